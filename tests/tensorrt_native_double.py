"""TEST DOUBLE of TensorRT's *native* module, so that TensorRT's own Python plugin package runs here.

``tensorrt.plugin`` (quickly deployable plugins) is plain Python, shipped in NVIDIA's
``tensorrt-cu13-bindings`` wheel as ``tensorrt_bindings/plugin/``; the real ``tensorrt`` package
re-exports it. It imports the compiled module ``tensorrt`` (libnvinfer, a GPU), which cannot be
loaded here. :func:`load_real_plugin_package` loads the **real** ``tensorrt.plugin`` sources from
the installed wheel against :class:`NativeDouble`, a stand-in for the compiled module that
provides only what those sources touch: enums, plugin fields, a plugin registry, the plugin
interface base classes, and an expression builder that evaluates shape expressions on concrete
integers (TensorRT evaluates the same expressions symbolically). Nothing here builds or runs
an engine.

:func:`build_aot_node` then drives one ONNX plugin node through the calls TensorRT makes while
building an engine: the ONNX parser's field conversion (as onnx-tensorrt's ``loadFields`` does
it: fields in the creator's field order, INT attributes as int32, STRING attributes as C
strings whose length counts the terminating NUL), ``create_plugin`` with PREFER_AOT, output
types and shapes, the autotune format combinations, ``get_launch_params`` and ``get_kernel``.
"""
from __future__ import annotations

import contextlib
import enum
import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def plugin_sources_dir() -> Path | None:
    """``tensorrt_bindings/plugin`` of the installed tensorrt-cu13-bindings wheel (not imported)."""
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "plugin"
    return d if (d / "_validate.py").is_file() else None


class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9
    FP4 = 10


class TensorFormat(enum.Enum):
    LINEAR = 0
    CHW2 = 1
    HWC8 = 2


class PluginFieldType(enum.Enum):
    FLOAT16 = 0
    FLOAT32 = 1
    FLOAT64 = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    CHAR = 6
    DIMS = 7
    UNKNOWN = 8
    BF16 = 9
    INT64 = 10
    FP8 = 11
    INT4 = 12
    FP4 = 13


_FIELD_DTYPES = {PluginFieldType.FLOAT16: np.float16, PluginFieldType.FLOAT32: np.float32,
                 PluginFieldType.FLOAT64: np.float64, PluginFieldType.INT8: np.int8, PluginFieldType.INT16: np.int16,
                 PluginFieldType.INT32: np.int32, PluginFieldType.INT64: np.int64, PluginFieldType.CHAR: np.int8,
                 PluginFieldType.UNKNOWN: np.uint8}


class PluginField:
    """Like the binding: ``data`` reads back as a numpy array of the field's element type."""

    def __init__(self, name: str = "", data=None, type: PluginFieldType = PluginFieldType.UNKNOWN):
        self.name, self.type = name, type
        dt = _FIELD_DTYPES.get(type, np.uint8)
        if data is None:
            self.data = np.zeros(0, dt)
        elif isinstance(data, (bytes, bytearray)):
            self.data = np.frombuffer(bytes(data), dtype=dt).copy()
        else:
            self.data = np.asarray(data).astype(dt)


class PluginFieldCollection(list):
    pass


class DimensionOperation(enum.Enum):
    SUM = 0
    PROD = 1
    MAX = 2
    MIN = 3
    SUB = 4
    EQUAL = 5
    LESS = 6
    FLOOR_DIV = 7
    CEIL_DIV = 8


class IDimensionExpr:
    """A dimension expression whose value is known (the double evaluates on concrete shapes)."""

    def __init__(self, value: int):
        self.value = int(value)

    def is_constant(self) -> bool:
        return True

    def get_constant_value(self) -> int:
        return self.value


_OPS = {DimensionOperation.SUM: lambda a, b: a + b, DimensionOperation.PROD: lambda a, b: a * b,
        DimensionOperation.MAX: max, DimensionOperation.MIN: min, DimensionOperation.SUB: lambda a, b: a - b,
        DimensionOperation.EQUAL: lambda a, b: int(a == b), DimensionOperation.LESS: lambda a, b: int(a < b),
        DimensionOperation.FLOOR_DIV: lambda a, b: a // b, DimensionOperation.CEIL_DIV: lambda a, b: -(-a // b)}


class IExprBuilder:
    def constant(self, value: int) -> IDimensionExpr:
        return IDimensionExpr(value)

    def operation(self, op: DimensionOperation, a: IDimensionExpr, b: IDimensionExpr) -> IDimensionExpr:
        return IDimensionExpr(_OPS[op](a.value, b.value))


class DimsExprs(list):
    def __init__(self, n: int = 0):
        super().__init__([None] * n)


class Dims(list):
    MAX_DIMS = 8

    def __init__(self, shape=0):
        super().__init__([] if isinstance(shape, int) else list(shape))


@dataclass
class PluginTensorDesc:
    dims: tuple = ()
    type: DataType = DataType.FLOAT
    format: TensorFormat = TensorFormat.LINEAR
    scale: float = 1.0


@dataclass
class DynamicPluginTensorDesc:
    desc: PluginTensorDesc = field(default_factory=PluginTensorDesc)
    min: tuple = ()
    opt: tuple = ()
    max: tuple = ()


class _Base:
    def __init__(self, *args, **kwargs):
        pass


class Logger(_Base):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def log(self, severity, msg) -> None:
        pass


class _Registry:
    def __init__(self):
        self.creators: dict[tuple[str, str, str], object] = {}

    def register_creator(self, creator, namespace: str) -> bool:
        self.creators[creator.name, creator.plugin_version, namespace] = creator
        return True

    def get_creator(self, name: str, version: str, namespace: str = ""):
        return self.creators.get((name, version, namespace))


@dataclass
class LaunchParams:
    """The native launch-parameter struct ``get_launch_params`` fills (values are ISymExpr)."""
    grid_x: object = None
    grid_y: object = None
    grid_z: object = None
    block_x: object = None
    block_y: object = None
    block_z: object = None
    shared_mem: object = None


class SymExprSetter(dict):
    nbSymExprs = 0


def _enum(name: str, members: list[str]) -> type:
    return enum.Enum(name, {m: i for i, m in enumerate(members)})


class NativeDouble(types.ModuleType):
    """Stand-in for the compiled ``tensorrt`` module (see the module docstring)."""

    def __init__(self):
        super().__init__("tensorrt")
        self.__version__ = "11.4.0.106 (native test double)"
        for cls in (DataType, TensorFormat, PluginFieldType, PluginField, PluginFieldCollection, DimensionOperation,
                    IDimensionExpr, IExprBuilder, DimsExprs, Dims, PluginTensorDesc, DynamicPluginTensorDesc, Logger):
            setattr(self, cls.__name__, cls)
        self.float32, self.float16, self.int8 = DataType.FLOAT, DataType.HALF, DataType.INT8
        self.int32, self.int64, self.bool, self.uint8 = DataType.INT32, DataType.INT64, DataType.BOOL, DataType.UINT8
        self.bfloat16, self.fp8, self.int4, self.fp4 = DataType.BF16, DataType.FP8, DataType.INT4, DataType.FP4
        self.TensorRTPhase = _enum("TensorRTPhase", ["BUILD", "RUNTIME"])
        self.QuickPluginCreationRequest = _enum("QuickPluginCreationRequest",
                                                ["UNKNOWN", "PREFER_JIT", "PREFER_AOT", "STRICT_JIT", "STRICT_AOT"])
        self.PluginArgType = _enum("PluginArgType", ["INT"])
        self.PluginArgDataType = _enum("PluginArgDataType", ["INT8", "INT16", "INT32"])
        for name in ("ITensor", "ISymExpr", "IPluginV3", "IPluginV3QuickCore", "IPluginV3QuickBuild",
                     "IPluginV3QuickRuntime", "IPluginV3QuickAOTBuild", "IPluginCreatorV3Quick"):
            setattr(self, name, type(name, (_Base,), {}))
        registry = _Registry()
        self.get_plugin_registry = lambda: registry

    @staticmethod
    def nptype(dt: DataType):
        return {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
                DataType.INT32: np.int32, DataType.INT64: np.int64, DataType.BOOL: np.bool_,
                DataType.UINT8: np.uint8}[dt]


@contextlib.contextmanager
def real_plugin_package():
    """Put ``NativeDouble`` at ``tensorrt`` and the wheel's real plugin sources at ``tensorrt.plugin``
    for the duration of the block; yields (native double, the real ``tensorrt.plugin``). Every
    ``tensorrt*`` module in ``sys.modules`` is restored afterwards."""
    src = plugin_sources_dir()
    if src is None:
        raise RuntimeError("tensorrt-cu13-bindings is not installed")
    saved = {k: v for k, v in sys.modules.items() if k == "tensorrt" or k.startswith("tensorrt.")}
    for k in saved:
        del sys.modules[k]
    try:
        native = NativeDouble()
        sys.modules["tensorrt"] = native
        spec = importlib.util.spec_from_file_location("tensorrt.plugin", src / "__init__.py",
                                                      submodule_search_locations=[str(src)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["tensorrt.plugin"] = module
        spec.loader.exec_module(module)
        native.plugin = module
        yield native, module
    finally:
        for k in [k for k in sys.modules if k == "tensorrt" or k.startswith("tensorrt.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@dataclass
class AOTLaunch:
    """What TensorRT would store in the engine for one AOT plugin node."""
    entry: bytes
    ptx: bytes
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_mem: int
    extra_args: list[int]
    output_shape: tuple[int, ...]
    output_type: DataType
    attrs: dict = field(default_factory=dict)


def parser_fields(native: NativeDouble, node, creator) -> PluginFieldCollection:
    """The plugin fields the ONNX parser makes for ``node`` (onnx-tensorrt ``loadFields``)."""
    from onnx import AttributeProto, helper

    attrs = {a.name: a for a in node.attribute}
    fields = []
    for wanted in creator.field_names:
        a = attrs.get(wanted.name)
        if a is None:
            continue                                    # the parser warns and leaves it out
        if a.type == AttributeProto.INT:
            fields.append(PluginField(a.name, np.array([a.i], np.int32), PluginFieldType.INT32))
        elif a.type == AttributeProto.STRING:
            fields.append(PluginField(a.name, a.s + b"\0", PluginFieldType.CHAR))   # length counts the NUL
        elif a.type == AttributeProto.FLOAT:
            fields.append(PluginField(a.name, np.array([a.f], np.float32), PluginFieldType.FLOAT32))
        else:
            raise NotImplementedError(helper.get_attribute_value(a))
    return PluginFieldCollection(fields)


def build_aot_node(native: NativeDouble, node, input_shapes: list[tuple[int, ...]],
                   input_types: list[DataType]) -> AOTLaunch:
    """Drive ``node`` through TensorRT's build-time plugin calls (see the module docstring)."""
    namespace = next(a.s.decode() for a in node.attribute if a.name == "plugin_namespace")
    creator = native.get_plugin_registry().get_creator(node.op_type, "1", namespace)
    if creator is None:
        raise LookupError(f"no plugin creator {namespace}::{node.op_type}")
    fc = parser_fields(native, node, creator)
    plugin = creator.create_plugin(node.op_type, namespace, fc, native.TensorRTPhase.BUILD,
                                   native.QuickPluginCreationRequest.PREFER_AOT)
    out_types = plugin.get_output_data_types(list(input_types), [len(s) for s in input_shapes])
    builder = IExprBuilder()
    in_exprs = []
    for shape in input_shapes:
        d = DimsExprs(len(shape))
        for i, v in enumerate(shape):
            d[i] = IDimensionExpr(v)
        in_exprs.append(d)
    out_exprs = plugin.get_output_shapes(in_exprs, [], builder)
    out_shapes = [tuple(e.get_constant_value() for e in exprs) for exprs in out_exprs]
    in_out = [DynamicPluginTensorDesc(PluginTensorDesc(tuple(s), t), tuple(s), tuple(s), tuple(s))
              for s, t in zip(input_shapes + out_shapes, list(input_types) + list(out_types))]
    supported = plugin.get_supported_format_combinations(in_out, len(input_shapes))
    n = len(in_out)
    combos = {tuple(d.type for d in supported[i:i + n]) for i in range(0, len(supported), n)}
    wanted = tuple(d.desc.type for d in in_out)
    if wanted not in combos:
        raise TypeError(f"type combination {wanted} is not among the plugin's {sorted(combos, key=str)}")
    plugin.configure_plugin(in_out[:len(input_shapes)], in_out[len(input_shapes):])
    plugin.set_tactic(0)
    launch, setter = LaunchParams(), SymExprSetter()
    plugin.get_launch_params(in_exprs, in_out, len(input_shapes), launch, setter, builder)
    entry, ptx = plugin.get_kernel([d.desc for d in in_out[:len(input_shapes)]],
                                   [d.desc for d in in_out[len(input_shapes):]])

    def value(sym) -> int:
        return sym.expr.get_constant_value()

    return AOTLaunch(entry, ptx, (value(launch.grid_x), value(launch.grid_y), value(launch.grid_z)),
                     (value(launch.block_x), value(launch.block_y), value(launch.block_z)), value(launch.shared_mem),
                     [value(setter[i]) for i in range(setter.nbSymExprs)], out_shapes[0], out_types[0],
                     dict(plugin.attrs))
