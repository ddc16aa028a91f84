"""A comparison as text: the side-by-side table (whole network and per layer kind), one line per
difference, as a plain table, Markdown or JSON; and a report's table in one tool's convention
(`cnncalc table --compat TOOL`)."""
from __future__ import annotations

from ..units import thousands
from . import Comparison, Difference, Result

UNIT_WORDS = {"macs": "MACs", "flops": "FLOPs", "mult-adds": "mult-adds", "muls": "MULs"}
NOTE = ("Counted at batch 1 on cnncalc's PyTorch export (`cnncalc export --to pytorch`), as each tool counts that "
        "module; differences are from cnncalc's params (trainable + non-trainable) and MACs.")


# ----------------------------------------------------------------------------- cnncalc compare
def comparison_text(comparison: Comparison, markdown: bool = False) -> str:
    """The conventions side by side, the ops per layer kind, then every difference."""
    number = thousands if markdown else short
    lines = [f"## {comparison.name}: every tool's count" if markdown
             else f"{comparison.name}: every tool's count, input {_shape(comparison.input_shape)}", ""]
    header = ["convention", "tool", "params", "ops", "unit", "called"]
    rows = [[r.convention.name, _tool(r), thousands(r.params), _ops(r, thousands), _unit(r), _called(r)]
            for r in comparison.results]
    lines += _grid(header, rows, markdown, numeric=(False, False, True, True, False, False))
    lines += ["", "Ops per layer kind (each convention's own unit):" if not markdown
              else "### Ops per layer kind (each convention's own unit)", ""]
    counting = [r for r in comparison.results if r.ops is not None]
    kinds = list(comparison.reference.per_kind)
    kind_rows = [[kind] + [number(r.per_kind[kind][1]) for r in counting] for kind in kinds]
    kind_rows.append(["total"] + [_ops(r, number) for r in counting])
    lines += _grid(["kind"] + [r.convention.name for r in counting], kind_rows, markdown,
                   numeric=(False,) + (True,) * len(counting))
    lines += ["", "### Differences from cnncalc" if markdown else "Differences from cnncalc:", ""]
    for result in comparison.results:
        lines += _difference_lines(result, markdown)
    lines += ["", NOTE]
    return "\n".join(lines) + "\n"


def short(value: int) -> str:
    """4 significant digits with K/M/G/T (4.089G, 22.23M), so small differences still show; below
    10,000 exact."""
    for factor, unit in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= 10 * factor or (unit != "K" and abs(value) >= factor):
            scaled = value / factor
            return f"{scaled:.{max(0, 3 - len(str(int(abs(scaled)))) + 1)}f}{unit}"
    return thousands(value)


def _difference_lines(result: Result, markdown: bool) -> list[str]:
    if not result.differences and not result.fails and not result.unknown:
        return []
    c = result.convention
    unit = f"ops in {UNIT_WORDS[c.ops_unit]}" if c.ops_unit else "params only"
    lines = [f"- **{c.name}** ({unit}): {c.summary}" if markdown else f"{c.name} ({unit}): {c.summary}"]
    for name, kind, error in result.fails:
        lines.append(("  - " if markdown else "  ") + f"FAILS on {name} ({kind}): {error}")
    for name, kind, module in result.unknown:
        lines.append(("  - " if markdown else "  ") + f"NOT REPRODUCED on {name} ({kind}): {unknown_text(c.name, module)}")
    for difference in result.differences:
        lines.append(("  - " if markdown else "  ") + difference_line(difference))
    return lines


def unknown_text(name: str, module: str) -> str:
    return (f"cnncalc has no tested rule for how {name} counts {module}; its count here is a guess, not the tool's")


def difference_line(difference: Difference) -> str:
    """`kind ops +N: reason: +N on a, +M on b` (MISCOUNT first where the tool gets it wrong)."""
    flag = "MISCOUNT " if difference.miscount else ""
    return (f"{flag}{difference.kind} {difference.quantity} {difference.delta:+,}: {difference.reason}"
            f"{_where(difference.layers)}")


def _where(layers) -> str:
    if len(layers) <= 3:
        return ": " + ", ".join(f"{delta:+,} on {name}" for name, delta in layers)
    name, delta = max(layers, key=lambda layer: abs(layer[1]))
    return f" ({len(layers)} layers, the most {delta:+,} on {name})"


def _called(result: Result) -> str:
    """What the tool calls its number, and how it prints it where that is reproduced."""
    c = result.convention
    shown = None if result.ops is None else c.shown(result.ops)
    return (c.ops_label or "") + (f" {shown}" if shown else "")


def _tool(result: Result) -> str:
    c = result.convention
    return f"{c.tool} {c.version}" if c.tool else "-"


def _unit(result: Result) -> str:
    return UNIT_WORDS.get(result.convention.ops_unit, "-")


def _ops(result: Result, number) -> str:
    if result.ops is None:
        return "-"
    return number(result.ops) + (" (fails)" if result.fails else "") + (" (not exact)" if result.unknown else "")


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def _grid(header: list[str], rows: list[list[str]], markdown: bool, numeric: tuple[bool, ...]) -> list[str]:
    if markdown:
        return (["| " + " | ".join(header) + " |", "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
                + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(cell.rjust(w) if n else cell.ljust(w) for cell, w, n in zip(cells, widths, numeric)).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


# ----------------------------------------------------------------------------- table --compat TOOL
def compat_dict(report, result: Result) -> dict:
    """A report's rows in one convention: its params and ops per row, and its totals."""
    c = result.convention
    return {
        "name": report.name,
        "convention": {"name": c.name, "tool": c.tool, "version": c.version, "ops_unit": c.ops_unit,
                       "ops_label": c.ops_label, "params_label": c.params_label, "summary": c.summary},
        "layers": [{"index": row.index, "name": row.name, "kind": row.kind, "output_shape": list(row.output_shape),
                    "params": params, "ops": ops} for row, (params, ops) in zip(report.layers, result.per_row)],
        "totals": {"params": result.params, "ops": result.ops},
        "runs": result.runs,
        "fails": [{"name": name, "kind": kind, "error": error} for name, kind, error in result.fails],
        "exact": result.exact,
        "unknown": [{"name": name, "kind": kind, "module": module} for name, kind, module in result.unknown],
    }


def compat_text(report, result: Result, fmt: str, shape_text) -> str:
    """The table in the tool's convention: its column names and counts, exact (table, markdown,
    csv) or as JSON. ``shape_text`` writes an output shape as the table does."""
    c = result.convention
    if fmt == "json":
        from ..render.json_layout import json_text

        return json_text(compat_dict(report, result))
    header = ["#", "name", "kind", "output", c.params_label] + ([c.ops_label] if c.ops_label else [])
    rows = [[str(row.index), row.name, row.kind, shape_text(row.output_shape), thousands(params)]
            + ([thousands(ops)] if ops is not None else []) for row, (params, ops) in zip(report.layers, result.per_row)]
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([cell.replace(",", "") if i >= 4 else cell for i, cell in enumerate(row)] for row in rows)
        return out.getvalue()
    numeric = (True, False, False, False, True, True)[:len(header)]
    rows.append(["", "total", "", "", thousands(result.params)] + ([thousands(result.ops)] if result.ops is not None else []))
    lines = [f"{report.name} as {c.name} counts it" + (f" ({c.tool} {c.version})" if c.tool else ""), ""]
    lines += _grid(header, rows, fmt == "markdown", numeric)
    lines += ["", f"{c.params_label}: {thousands(result.params)}"]
    if result.ops is not None:
        shown = c.shown(result.ops)
        lines.append(f"{c.ops_label}: {thousands(result.ops)}" + (f", shown as {shown}" if shown else "")
                     + f" ({UNIT_WORDS[c.ops_unit]}: {c.summary})")
    for name, kind, error in result.fails:
        lines.append(f"FAILS on {name} ({kind}): {error}")
    for name, kind, module in result.unknown:
        lines.append(f"NOT REPRODUCED on {name} ({kind}): {unknown_text(c.name, module)}")
    differing = sorted({name for d in result.differences for name, _ in d.layers}, key=[r.name for r in report.layers].index)
    if differing:
        lines.append(f"{len(differing)} of {len(report.layers)} rows differ from cnncalc's count: "
                     f"`cnncalc compare SPEC --convention {c.name}` says why.")
    lines.append(NOTE)
    return "\n".join(lines) + "\n"
