"""gsdf.synth: the embedded synthetic hand-object dataset (stage ``synth``, DESIGN.md section 4).

* :func:`write_sample` -- one sample in the canonical layout (docs/architecture.md); the stage
  that generates a shard is :mod:`gsdf.stages.synth`;
* :func:`make_contact_sheet` -- a PNG grid of samples (image, mask, annotations);
* :class:`SequenceGenerator` -- sequences of samples (object, grasp, motion, rendering);
* building blocks: :mod:`~gsdf.synth.objects` (procedural families, user meshes),
  :mod:`~gsdf.synth.grasp` (fingers close until they touch), :mod:`~gsdf.synth.render`
  (Embree ray casting), :mod:`~gsdf.synth.camera`.
"""

from gsdf.synth.config import SynthConfig
from gsdf.synth.contact_sheet import make_contact_sheet
from gsdf.synth.dataset import load_hand_asset, shard_sequences, split_sequences, write_sample
from gsdf.synth.generate import Sample, SequenceGenerator
from gsdf.synth.objects import FAMILIES, ObjectMesh, load_user_meshes, make_object

__all__ = [
    "FAMILIES",
    "ObjectMesh",
    "Sample",
    "SequenceGenerator",
    "SynthConfig",
    "load_user_meshes",
    "make_contact_sheet",
    "make_object",
    "load_hand_asset",
    "shard_sequences",
    "split_sequences",
    "write_sample",
]
