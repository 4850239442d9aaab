# Stage `pack`: rules are added by the issue that builds it (see README 'Stages').
