"""Writing the stvsr metadata into an ONNX model (needs onnx); its schema and reading it live in
``stvsr.metadata``, which the runtime uses without onnx."""
from __future__ import annotations

from stvsr.metadata import METADATA_KEY, ModelMetadata


def write_onnx_metadata(model_proto, meta: ModelMetadata) -> None:
    """Store ``meta`` in an ``onnx.ModelProto`` (replacing an earlier entry)."""
    props = [p for p in model_proto.metadata_props if p.key != METADATA_KEY]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(props)
    entry = model_proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
