"""Per-layer performance figures (measured by the RTL's counters or predicted by ``quant.perfmodel``):
one row type, a text table, JSON/CSV and the matplotlib plots (utilization per layer, roofline)."""
import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from hdl.config import AcceleratorConfig

from .compiler import CompiledNet
from .summary import summarize

__all__ = ["LayerFigures", "layer_figures", "format_table", "write_json", "write_csv", "plot_utilization",
           "plot_roofline"]


@dataclass(frozen=True)
class LayerFigures:
    """One layer's figures; ``pe_utilization`` = MACs / (R x C x cycles), for convolutions only."""
    name: str
    op: str
    shape: tuple[int, int, int]      # output (H, W, C)
    macs: int
    cycles: int
    array_busy: int
    bytes_read: int
    bytes_written: int
    load_stall: int
    store_stall: int
    instructions: int
    pe_utilization: float | None
    ops_per_byte: float              # 2 x MACs (or element operations) / DRAM bytes moved

    def as_dict(self) -> dict:
        return asdict(self)


def layer_figures(net: CompiledNet, counters: list[dict[str, int]]) -> list[LayerFigures]:
    """Rows for ``net.layers`` from per-layer counters (``hdl.csr.COUNTERS`` names)."""
    peak = net.config.array.rows * net.config.array.cols
    rows = []
    for summary, c in zip(summarize(net), counters, strict=True):
        convolution = summary.op.startswith("conv") or summary.op == "depthwise"
        moved = c["BYTES_READ"] + c["BYTES_WRITTEN"]
        rows.append(LayerFigures(
            summary.name, summary.op, tuple(summary.output_shape), summary.macs, c["CYCLES"], c["ARRAY_BUSY"],
            c["BYTES_READ"], c["BYTES_WRITTEN"], c["LOAD_STALL"], c["STORE_STALL"], c["INSTRUCTIONS"],
            summary.macs / (peak * c["CYCLES"]) if convolution and c["CYCLES"] else None,
            2 * summary.macs / moved if moved else 0.0))
    return rows


def format_table(rows: list[LayerFigures]) -> str:
    head = (f"{'layer':<28} {'op':<9} {'shape':>13} {'MACs':>11} {'cycles':>10} {'PE util':>7} "
            f"{'DRAM read':>10} {'written':>9} {'ld stall':>9} {'st stall':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        util = f"{r.pe_utilization:.1%}" if r.pe_utilization is not None else "-"
        lines.append(f"{r.name[:28]:<28} {r.op:<9} {'x'.join(map(str, r.shape)):>13} {r.macs:>11,} {r.cycles:>10,} "
                     f"{util:>7} {r.bytes_read:>10,} {r.bytes_written:>9,} {r.load_stall:>9,} {r.store_stall:>8,}")
    macs, cycles = sum(r.macs for r in rows if r.pe_utilization is not None), sum(r.cycles for r in rows)
    lines.append(f"{'total':<28} {'':<9} {'':>13} {macs:>11,} {cycles:>10,} {'':>7} "
                 f"{sum(r.bytes_read for r in rows):>10,} {sum(r.bytes_written for r in rows):>9,} "
                 f"{sum(r.load_stall for r in rows):>9,} {sum(r.store_stall for r in rows):>8,}")
    return "\n".join(lines)


def write_json(path: Path, rows: list[LayerFigures], **extra) -> None:
    path.write_text(json.dumps({**extra, "layers": [r.as_dict() for r in rows]}, indent=2))


def write_csv(path: Path, rows: list[LayerFigures]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].as_dict()))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r.as_dict(), "shape": "x".join(map(str, r.shape))})


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_utilization(path: Path, series: dict[str, list[LayerFigures]], title: str) -> None:
    """Bars of PE utilization per layer, one bar group per layer, one colour per series."""
    plt = _pyplot()
    first = next(iter(series.values()))
    names = [r.name for r in first]
    figure, axes = plt.subplots(figsize=(max(8, 0.22 * len(names) * max(1, len(series))), 4.5))
    width = 0.8 / len(series)
    for index, (label, rows) in enumerate(series.items()):
        axes.bar([i + index * width for i in range(len(rows))], [100 * (r.pe_utilization or 0) for r in rows],
                 width, label=label)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=90, fontsize=6)
    axes.set_ylabel("PE utilization (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_roofline(path: Path, config: AcceleratorConfig, series: dict[str, list[LayerFigures]], title: str) -> None:
    """Attained ops/cycle against ops per DRAM byte, under the roofs min(2RC, ops/byte x bus bytes/cycle)."""
    plt = _pyplot()
    peak = 2 * config.array.rows * config.array.cols
    bandwidth = config.bus_bytes
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    intensities = [r.ops_per_byte for rows in series.values() for r in rows if r.ops_per_byte > 0]
    low, high = min(intensities + [0.1]) / 2, max(intensities + [10 * peak / bandwidth]) * 2
    xs = [low * (high / low) ** (i / 200) for i in range(201)]
    axes.plot(xs, [min(peak, x * bandwidth) for x in xs], "k-", linewidth=1,
              label=f"roof: {peak} ops/cycle, {bandwidth} B/cycle")
    for label, rows in series.items():
        points = [(r.ops_per_byte, 2 * r.macs / r.cycles) for r in rows if r.ops_per_byte > 0 and r.cycles]
        axes.scatter([p[0] for p in points], [p[1] for p in points], s=12, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("ops per DRAM byte (2 x MACs / bytes read + written)")
    axes.set_ylabel("attained ops per cycle")
    axes.set_title(title)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
