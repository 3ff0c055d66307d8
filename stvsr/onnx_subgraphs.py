"""ONNX graphs nested in control-flow nodes (``Loop``, ``If``, ``Scan`` bodies), for the graph passes.

A body reads tensors of its enclosing graphs by name (weights, activations) and its own tensor
names are unique in the whole model, so a pass that rewrites nodes, converts precision or checks
types must see every graph of the model and every use of a name, not only the top-level graph.
"""
from __future__ import annotations

from typing import Iterator

import onnx
from onnx import AttributeProto


def node_subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The graphs held by ``node``'s attributes (a Loop's body, an If's branches)."""
    out: list[onnx.GraphProto] = []
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            out.append(a.g)
        elif a.type == AttributeProto.GRAPHS:
            out.extend(a.graphs)
    return out


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and every graph nested in it, outer before inner."""
    yield graph
    for node in graph.node:
        for sub in node_subgraphs(node):
            yield from all_graphs(sub)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the graphs nested in it."""
    for g in all_graphs(graph):
        yield from g.node


def all_initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers of ``graph`` and of its nested graphs, by name."""
    return {t.name: t for g in all_graphs(graph) for t in g.initializer}


def all_value_infos(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Typed values (value_info, inputs, outputs) of ``graph`` and its nested graphs."""
    return [v for g in all_graphs(graph) for v in list(g.value_info) + list(g.input) + list(g.output)]


def outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names that the nodes of ``graph`` (nested graphs included) read but that it does not define: what a
    body takes from its enclosing graphs."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {o for n in graph.node for o in n.output}
    used = {i for n in graph.node for i in n.input if i}
    for node in graph.node:
        for sub in node_subgraphs(node):
            used |= outer_names(sub)
    return used - defined


def uses(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """name -> (node, input slot) for every node of ``graph`` that reads it, nested graphs included."""
    found: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in all_nodes(graph):
        for i, name in enumerate(node.input):
            if name:
                found.setdefault(name, []).append((node, i))
    return found


def rename_inputs(graph: onnx.GraphProto, rename: dict[str, str]) -> None:
    """Make every node of ``graph`` (nested graphs included) read ``rename[name]`` instead of ``name``."""
    for node in all_nodes(graph):
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
