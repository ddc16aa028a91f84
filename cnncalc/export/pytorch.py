"""`cnncalc export SPEC --to pytorch`: the spec as one readable PyTorch file that needs PyTorch alone.

The file holds one ``nn.Module`` whose submodules carry the spec's names (``layer1.0.conv1`` is
nested containers, as in torchvision's module tree, so ``model.named_modules()`` lists the spec's
names) and whose ``forward`` is the plan's steps written out as plain statements: one line per
report row, in the engine's order, so merges, split pieces and several named inputs are ordinary
variables. Running it gives the spec's output shape, its trainable parameters and its MACs.

This module is generic: every row's code comes from its layer kind (``Layer.pytorch``: the
submodule's constructor or None, and the forward expression), so it never looks at kind names.
Nothing here imports torch; only the file written does.
"""
from __future__ import annotations

import builtins
import json
import keyword
import re
from collections import defaultdict
from dataclasses import dataclass, field

from ..errors import CnnCalcError

# What a submodule's name must not be to be reached as an attribute (`self.features.conv1`): the
# attributes of nn.Module and nn.ModuleDict (a name among them would hide the method, or the
# method would hide the submodule). Such names, and names that are no Python identifier ("1x1",
# "0", "block1-0"), are reached by subscript (`self.features["0"]`) or getattr.
MODULE_ATTRIBUTES = frozenset("""
    T_destination add_module apply bfloat16 buffers call_super_init children clear compile cpu cuda double
    dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half ipu
    items keys load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
    pop register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
    register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
    to_empty train training type update values xpu zero_grad
""".split())

WITH_CHILDREN = '''\
# Submodules that add_module refuses: the children of a layer that is itself a submodule (the
# spec names both `a` and `a.b`), and names PyTorch's own attributes use (`forward`, `keys`).
# They are set in _modules directly, so named_modules() still lists the spec's names.
def with_children(module, children):
    module._modules.update(children)
    return module
'''

INDENT = " " * 4


@dataclass
class Node:
    """One name in the module tree: a submodule (``module``: its constructor), a container of the
    names below it (``children``; an nn.ModuleDict), or both; or a parameter of its parent
    (``parameter``: its constructor)."""

    module: str | None = None
    children: dict[str, "Node"] = field(default_factory=dict)
    parameter: str | None = None

    def submodules(self) -> dict[str, "Node"]:
        return {key: child for key, child in self.children.items() if child.parameter is None}


def module_keys(name: str) -> list[str]:
    """``layer1.0.conv1`` -> ["layer1", "0", "conv1"]; PyTorch refuses an empty name, so an empty
    part (``a..b``) becomes ``_``."""
    return [part or "_" for part in name.split(".")]


def attribute_safe(key: str) -> bool:
    return (key.isidentifier() and key.isascii() and not keyword.iskeyword(key) and not key.startswith("_")
            and key not in MODULE_ATTRIBUTES)


def collides(key: str) -> bool:
    """Whether add_module refuses ``key`` (an attribute of nn.Module or nn.ModuleDict already has it)."""
    return key in MODULE_ATTRIBUTES or key.startswith("_")


def literal(text: str) -> str:
    return json.dumps(text)  # a valid Python string literal


def class_name(name: str, taken: set[str] = frozenset()) -> str:
    """The spec's name as a class name: "LeNet-5" -> LeNet5, "resnet18" -> Resnet18."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    candidate = "".join(word[:1].upper() + word[1:] for word in words) or "Net"
    if candidate[0].isdigit():
        candidate = "Net" + candidate
    while candidate in taken or candidate in {"F", "nn", "torch"}:
        candidate += "Net"
    return candidate


class Names:
    """Local variable names for ``forward``: unique, never a keyword, a builtin, a helper or a module
    the file imports."""

    def __init__(self, taken: set[str]):
        self.taken = {"self", "x", "torch", "nn", "F", *keyword.kwlist, *dir(builtins), *taken}

    def new(self, name: str) -> str:
        base = re.sub(r"[^0-9A-Za-z_]", "_", name) or "value"
        if base[0].isdigit():
            base = "x_" + base
        if base in self.taken:
            base += "_"
        candidate, number = base, 2
        while candidate in self.taken:
            candidate, number = f"{base}{number}", number + 1
        self.taken.add(candidate)
        return candidate


def docstring(text: str) -> str:
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') + '"""'


def shape_list(shape) -> str:
    return "[N, " + ", ".join(map(str, shape)) + "]"


def pytorch_source(analysis, source: str | None = None, description: str | None = None) -> str:
    """The PyTorch file of an analysed spec (``cnncalc.engine.Analysis``: its plan and report).
    ``source``: how the spec was named on the command line; ``description``: the spec's own line."""
    plan, report = analysis.plan, analysis.report
    steps = plan.steps
    codes = [step.layer.pytorch(step) for step in steps]

    helpers: dict[str, str] = {}
    tree = Node()
    for step, code in zip(steps, codes):
        helpers.update(code.helpers)
        if code.module is not None or code.parameter is not None:
            node = tree
            for key in module_keys(step.name):
                if node.parameter is not None:
                    raise CnnCalcError(f"cannot write `{step.name}` as PyTorch: an earlier layer's parameter has "
                                       "the name it would sit under; rename one of them")
                node = node.children.setdefault(key, Node())
            node.module, node.parameter = code.module, code.parameter
            if code.parameter is not None and node.children:
                raise CnnCalcError(f"cannot write `{step.name}` as PyTorch: it is a parameter, and other layers "
                                   "are named below it; rename one of them")
    if _needs_with_children(tree):
        helpers["with_children"] = WITH_CHILDREN
    name = class_name(plan.name, set(helpers))

    init = [f"{INDENT * 2}super().__init__()"]
    for key, child in tree.submodules().items():
        value = _construct(child, 2)
        if attribute_safe(key):
            init.append(f"{INDENT * 2}self.{key} = {value}")
        elif collides(key):
            init.append(f"{INDENT * 2}# add_module refuses this name: nn.Module has an attribute of it")
            init.append(f"{INDENT * 2}self._modules[{literal(key)}] = {value}")
        else:
            init.append(f"{INDENT * 2}self.add_module({literal(key)}, {value})")
    for step, code in zip(steps, codes):  # parameters that carry a row's name (a layer scale)
        if code.parameter is not None:
            *parent, key = module_keys(step.name)
            owner = _access(parent, tree)
            if attribute_safe(key):
                init.append(f"{INDENT * 2}{owner}.{key} = {code.parameter}")
            elif collides(key):
                init.append(f"{INDENT * 2}{owner}._parameters[{literal(key)}] = {code.parameter}")
            else:
                init.append(f"{INDENT * 2}{owner}.register_parameter({literal(key)}, {code.parameter})")
    arguments, forward = _forward(plan, codes, tree, Names(set(helpers) | {name}))

    shapes = list(plan.inputs.values())
    inputs_text = ", ".join(f"{arg} {shape_list(shape)}" for arg, shape in zip(arguments, shapes))
    header = (f"{plan.name}, written by `cnncalc export {source or plan.name} --to pytorch`.\n"
              + (f"{description}\n" if description else "") + "\n"
              f"Input{'s' if len(arguments) > 1 else ''}: {inputs_text}; output {shape_list(steps[-1].output_shape)}.\n"
              f"Trainable parameters: {report.totals.trainable_params:,} (batch norm's running statistics are "
              "buffers, not parameters).\n"
              f"Multiply-accumulates per sample: {report.totals.macs // report.batch:,}, as `cnncalc table` counts "
              "them.\n"
              "The file needs PyTorch alone. Call model.eval() before inference: batch norm then uses its\n"
              "running statistics, and dropout and stochastic depth are off.\n")
    model = (f"class {name}(nn.Module):\n"
             f"{INDENT}{docstring(plan.name + ': its submodules carry the spec' + chr(39) + 's layer names.')}\n\n"
             f"{INDENT}def __init__(self):\n" + "\n".join(init) + "\n\n"
             f"{INDENT}def forward(self, {', '.join(arguments)}):\n" + "\n".join(forward) + "\n")
    shapes_text = ", ".join(f"{literal(arg)}: {tuple(shape)!r}" for arg, shape in zip(arguments, shapes))
    constants = ("# The forward arguments' shapes per sample ([C, *spatial], without the batch axis).\n"
                 f"INPUT_SHAPES = {{{shapes_text}}}\n")
    main = ('if __name__ == "__main__":\n'
            f"{INDENT}model = {name}().eval()\n"
            f"{INDENT}inputs = [torch.randn(1, *shape) for shape in INPUT_SHAPES.values()]\n"
            f"{INDENT}with torch.no_grad():\n"
            f"{INDENT * 2}output = model(*inputs)\n"
            f'{INDENT}print(f"output {{list(output.shape)}}, "\n'
            f'{INDENT}      f"{{sum(p.numel() for p in model.parameters()):,}} trainable parameters")\n')
    imports = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
    blocks = [docstring(header) + "\n" + imports, *helpers.values(), model, constants, main]
    return "\n\n".join(block.rstrip("\n") + "\n" for block in blocks)


def _needs_with_children(node: Node, root: bool = True) -> bool:
    """A module with children, or a container with a name add_module refuses, anywhere below the root."""
    children = node.submodules()
    if not root and children and (node.module is not None or any(map(collides, children))):
        return True
    return any(_needs_with_children(child, False) for child in children.values())


def _construct(node: Node, depth: int) -> str:
    """The constructor of ``node``: its module, an nn.ModuleDict of its children, or both (its
    parameters are set after it is built)."""
    children = node.submodules()
    if not children:
        return node.module or "nn.ModuleDict()"
    items = "".join(f"{INDENT * (depth + 1)}{literal(key)}: {_construct(child, depth + 1)},\n"
                    for key, child in children.items())
    body = "{\n" + items + INDENT * depth + "}"
    if node.module is None and not any(map(collides, children)):
        return f"nn.ModuleDict({body})"
    return f"with_children({node.module or 'nn.ModuleDict()'}, {body})"


def _access(keys: list[str], tree: Node) -> str:
    """The expression that reaches a submodule (or a parameter) from ``self``: attributes where the
    name allows, else a subscript of the nn.ModuleDict that holds it (or getattr on a module that is
    not one, or its _modules / _parameters where an attribute of PyTorch's has the name)."""
    expression, node, in_dict = "self", tree, False
    for key in keys:
        node = node.children[key]
        if attribute_safe(key):
            expression += f".{key}"
        elif in_dict and node.parameter is None:
            expression += f"[{literal(key)}]"
        elif collides(key):
            expression += f"._parameters[{literal(key)}]" if node.parameter else f"._modules[{literal(key)}]"
        else:
            expression = f"getattr({expression}, {literal(key)})"
        in_dict = node.module is None
    return expression


def _forward(plan, codes, tree: Node, names: Names) -> tuple[list[str], list[str]]:
    """(forward's arguments, its lines). A value read only by the next row lives in ``x``, the
    chain; a value read later or more than once gets a variable named after its row (or input)."""
    steps = plan.steps
    readers: dict[int, list[int]] = defaultdict(list)
    for step in steps:
        for index in dict.fromkeys(step.inputs):
            readers[index].append(step.index)
    homes: dict[int, str] = {}
    input_names = list(plan.inputs)
    if len(input_names) == 1 and readers[-1] == [steps[0].index]:
        homes[-1] = "x"
    else:
        for number, input_name in enumerate(input_names, start=1):
            homes[-number] = names.new(input_name)
    arguments = [homes[-number] for number in range(1, len(input_names) + 1)]
    last = steps[-1].index
    lines = []
    for step, code in zip(steps, codes):
        if step.index == last or readers[step.index] == [step.index + 1]:
            homes[step.index] = "x"
        else:
            homes[step.index] = names.new(step.name)
        values = [homes[i] for i in step.inputs]
        fields = {"x": values[0], "xs": ", ".join(values), **{f"x{i}": value for i, value in enumerate(values)}}
        if code.module is not None or code.parameter is not None:
            fields["m"] = _access(module_keys(step.name), tree)
            comment = shape_list(step.output_shape)
        else:
            comment = f"{step.name} ({step.kind}): {shape_list(step.output_shape)}"
        lines.append(f"{INDENT * 2}{homes[step.index]} = {code.call.format(**fields)}  # {comment}")
    lines.append(f"{INDENT * 2}return {homes[last]}")
    return arguments, lines
