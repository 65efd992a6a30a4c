"""An R x C systolic array with input skew and output de-skew, for WS or OS.

Streams (all ``amaranth.lib.stream``, payloads are ``data.StructLayout``):

``activations``
    One beat per cycle: ``data`` holds R int8 lanes (lane i feeds row i),
    ``last`` closes a tile, ``mode`` picks int8/binary (``both`` only),
    ``depthwise`` (arrays with the depthwise mode) makes it a depthwise beat;
    OS arrays with it also take ``secondary_data`` (R lanes) and ``secondary``.
``weights``
    ``data`` holds C int8 lanes (lane j feeds column j).
``results``
    ``data`` holds C int32 lanes, ``last`` closes a tile.

Output stationary (OS)
    A tile is K beats taken in lockstep from both streams: beat k carries
    column k of the R x K activation tile and row k of the K x C weight tile.
    Each PE accumulates its output in place; on ``last`` it hands the sum to a
    result register and starts the next tile in the same cycle. The tile
    then drains as R result beats (row 0 first) while the next tile computes.
    Draining takes R cycles, so a tile with K < R is padded with R - K idle
    cycles; K >= R keeps every PE busy.

Weight stationary (WS)
    A weight tile is exactly R beats on ``weights`` (row r of the R x C tile in
    beat r; pad unused rows with ``numerics.neutral_padding``). It shifts into
    shadow registers while the previous tile computes. The tile's M activation
    beats (row m of the M x R activation tile in beat m, ``last`` on the final
    one) then stream through; each yields one result beat of partial sums.
    Loading the next tile's weights takes R cycles, so tiles with M < R are
    padded with idle cycles; M >= R keeps every PE busy.

Depthwise mode (arrays with ``config.depthwise``)
    Each column works on its own channel: on a depthwise beat every PE of
    column j multiplies lane j of the activation stream (the value entering
    row j, so already skewed by j) instead of its row's lane. PE (i, j) sees
    that value i beats after its own row's beat, so a 1-D correlation per
    channel (``numerics.golden_depthwise``) comes out:

    * WS: the partial sum of beat m leaves column j as ``sum_r x[m + r][j] *
      w[r][j]`` (R stationary taps). Result beat m needs beats up to m + R - 1,
      so of a tile's M beats the last R - 1 results mix in the next tile's
      beats; the compute unit drops them.
    * OS: row i of a K-beat tile (K >= R) sums ``x[i + k][j] * w[k][j]`` over
      the tile's K weight beats k, so row i is output pixel i of a correlation
      with the streamed taps. Where ``i + k >= K`` the operand is a later
      beat's (or 0): the compute unit streams weight 0 at such beats and keeps
      only the rows that do not need them.

    * Paired (``config.paired``): each beat brings a second row,
      ``secondary_data``, and on a beat flagged ``secondary`` PEs multiply its
      lane j (skewed like lane j) instead: OS row i's PEs (set on a tile's
      first beat, row i sums ``secondary[i][j] * w[0][j] + sum_{k >= 1} x[i +
      k][j] * w[k][j]``), WS row 0's (set on every beat of a tile, result m is
      ``secondary[m][j] * w[0][j] + sum_{r >= 1} x[m + r][j] * w[r][j]``):
      ``numerics.golden_paired_depthwise``, so a stride-2 window's odd column
      (secondary) and even ones (x) meet in one tile.

    Columns j >= R multiply 0. The correlation is in time, so a depthwise
    tile's beats after its first must come on consecutive cycles (OS: on both
    streams); the compute unit's scratchpad readers stream them so.

The array never stalls: its registers have no enable, because one shared by
every PE register was the 16x16 ECP5 core's worst path (83.3 MHz, 10.6 of
12.0 ns routing, 2026-12-05 #9). Gaps in the input streams pass through as
invalid beats, and ``results`` has no ``ready``: its consumer takes a beat in
every cycle it is valid. ``stream_cycles`` gives the exact cycle count.
"""
from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import ArithSupport, ArrayConfig, Dataflow, refusable
from .numerics import ACC_BITS, OPERAND_BITS, ArithMode
from .pe import ProcessingElement, row_tag_shape

__all__ = ["SystolicArray", "activation_beat_layout", "weight_beat_layout",
           "result_beat_layout", "stream_cycles"]


def activation_beat_layout(config: ArrayConfig) -> data.StructLayout:
    fields = {"data": data.ArrayLayout(signed(OPERAND_BITS), config.rows), "last": 1}
    if config.arith == ArithSupport.BOTH:
        fields["mode"] = ArithMode
    if config.depthwise:
        fields["depthwise"] = 1
    if config.paired:
        fields["secondary"] = 1
        fields["secondary_data"] = data.ArrayLayout(signed(OPERAND_BITS), config.rows)
    return data.StructLayout(fields)


def weight_beat_layout(config: ArrayConfig) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(signed(OPERAND_BITS), config.cols)})


def result_beat_layout(config: ArrayConfig) -> data.StructLayout:
    return data.StructLayout({"data": data.ArrayLayout(signed(ACC_BITS), config.cols), "last": 1})


def stream_cycles(config: ArrayConfig, tiles: int, beats_per_tile: int) -> int:
    """Cycles from the first accepted input beat to the last result beat, inclusive.

    Assumes every input beat is offered as soon as it can be taken and results
    are never back-pressured. ``beats_per_tile`` is K for OS and M for WS.

    OS: ``fill + stream + drain`` = ``0 + (K + (tiles-1) * max(K, R)) + (2R + C - 1)``
        (the skew is absorbed as the inputs stream; the drain is the skew
        across R + C - 1 PEs, R result rows and one readout register).
    WS: ``R + (M + (tiles-1) * max(M, R)) + (R + C - 1)``
        (the first R cycles preload weights; later preloads overlap compute).
    A pipelined array (``config.pipelined``) adds ``config.latency_stages`` to either.
    """
    rows, cols = config.rows, config.cols
    period = max(beats_per_tile, rows)
    stream_part = beats_per_tile + (tiles - 1) * period + config.latency_stages
    if config.dataflow == Dataflow.OS:
        return stream_part + 2 * rows + cols - 1
    return rows + stream_part + rows + cols - 1


def _delay_line(m: Module, value, cycles: int, name: str) -> list:
    """``value`` and each of ``cycles`` registers after it."""
    stages = [value]
    for stage in range(cycles):
        register = Signal(value.shape(), name=f"{name}_d{stage}")
        m.d.sync += register.eq(stages[-1])
        stages.append(register)
    return stages


def _delayed(m: Module, value, cycles: int, name: str):
    """``value`` through ``cycles`` registers."""
    return _delay_line(m, value, cycles, name)[-1]


class SystolicArray(wiring.Component):
    """A systolic GEMM array; see the module documentation for the stream protocol.

    Parameters
    ----------
    config : ArrayConfig
        Shape, dataflow and arithmetic.

    Members
    -------
    activations : In(stream.Signature(activation_beat_layout(config)))
    weights : In(stream.Signature(weight_beat_layout(config)))
    results : Out(stream.Signature(result_beat_layout(config), always_ready=True))
    """

    @refusable
    def __init__(self, config: ArrayConfig):
        if not isinstance(config, ArrayConfig):
            raise TypeError(f"Systolic array config must be an ArrayConfig, not {config!r}")
        self.config = config
        super().__init__({
            "activations": In(stream.Signature(activation_beat_layout(config))),
            "weights": In(stream.Signature(weight_beat_layout(config))),
            "results": Out(stream.Signature(result_beat_layout(config), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, config = self.config.rows, self.config.cols, self.config
        acts, weights, results = self.activations, self.weights, self.results

        pes = [[ProcessingElement(config, row, col) for col in range(cols)] for row in range(rows)]
        for row in range(rows):
            for col in range(cols):
                m.submodules[f"pe_{row}_{col}"] = pe = pes[row][col]
                if col > 0:
                    m.d.comb += pe.act_in.eq(pes[row][col - 1].act_out)
                if row > 0:
                    m.d.comb += pe.weight_in.eq(pes[row - 1][col].weight_out)
                    if config.dataflow == Dataflow.WS:
                        m.d.comb += pe.psum_in.eq(pes[row - 1][col].psum_out)

        act_fire = Signal()
        weight_fire = Signal()
        m.d.comb += [act_fire.eq(acts.valid & acts.ready), weight_fire.eq(weights.valid & weights.ready)]
        expect_first, preload_row = self._accept(m, act_fire, weight_fire)

        # Input skew: lane i waits i cycles so that operands meet at PE (i, j) at t + i + j;
        # pipelined, every lane first passes one edge register (no handshake path into a multiplier).
        edge = 1 if config.pipelined else 0
        entering = []         # each lane's data a cycle before it enters its row
        for row in range(rows):
            lane = Signal(pes[row][0].act_in.shape(), name=f"act_lane_{row}")
            # The operand fields pass whether or not a beat is taken: a product counts only with its
            # beat's valid flag (OS accumulates only valid beats; WS frames its results by them), and
            # gated by the handshake they put it in front of the multipliers that take column 0's
            # channel early (16x16 ECP5 core with the DSP primitive: 13.5 ns, 11.3 of it routing).
            m.d.comb += lane.data.eq(acts.payload.data[row])
            if config.arith == ArithSupport.BOTH:
                m.d.comb += lane.mode.eq(acts.payload.mode)
            if config.depthwise:
                m.d.comb += lane.depthwise.eq(acts.payload.depthwise)
            if config.paired:
                m.d.comb += lane.secondary.eq(acts.payload.secondary)
            with m.If(act_fire):
                m.d.comb += [lane.valid.eq(1), lane.last.eq(acts.payload.last)]
                if config.dataflow == Dataflow.WS:
                    m.d.comb += lane.first.eq(expect_first)
            skew = _delay_line(m, lane, row + edge, f"act_skew_{row}")
            m.d.comb += pes[row][0].act_in.eq(skew[-1])
            entering.append(skew[-2] if len(skew) > 1 else None)
        if config.depthwise:
            # Column j's channel is lane j as it enters row j: skewed by j, like column j's other operands.
            # Pipelined, each PE selects its operand a cycle early into a register (ProcessingElement).
            for col in range(cols):
                channel = 0 if col >= rows else entering[col].data if config.pipelined else pes[col][0].act_in.data
                for row in range(rows):
                    m.d.comb += pes[row][col].column_in.eq(channel)
                if config.paired and col < rows:
                    # Skewed like `channel`: col registers (pipelined: one edge register more, less the cycle early).
                    secondary = _delayed(m, acts.payload.secondary_data[col], col, f"secondary_skew_{col}")
                    for row in range(rows):
                        if pes[row][col].pairs:
                            m.d.comb += pes[row][col].column_secondary_in.eq(secondary)
        if config.early_operands:
            for row in range(rows):
                for col in range(cols):
                    m.d.comb += pes[row][col].act_early.eq(entering[row] if col == 0 else pes[row][col - 1].act_in)
        for col in range(cols):
            lane = Signal(pes[0][col].weight_in.shape(), name=f"weight_lane_{col}")
            if config.dataflow == Dataflow.OS:
                m.d.comb += lane.eq(weights.payload.data[col])
            else:
                m.d.comb += [lane.valid.eq(weight_fire), lane.row.eq(preload_row),
                             lane.data.eq(weights.payload.data[col])]
            skew = _delay_line(m, lane, col + edge, f"weight_skew_{col}")
            m.d.comb += pes[0][col].weight_in.eq(skew[-1])
            if config.early_weights:
                m.d.comb += pes[0][col].weight_early.eq(skew[-2])
                for row in range(1, rows):
                    m.d.comb += pes[row][col].weight_early.eq(pes[row - 1][col].weight_in)
            if config.dataflow == Dataflow.WS:
                m.d.comb += pes[0][col].psum_in.eq(0)

        # Column outputs (registered), then de-skew: column j is j cycles ahead of column C-1.
        column_layout = data.StructLayout({"valid": 1, "last": 1, "data": signed(ACC_BITS)})
        for col in range(cols):
            column = self._column_output(m, [pes[row][col] for row in range(rows)], column_layout, col)
            aligned = _delayed(m, column, cols - 1 - col, f"deskew_{col}")
            m.d.comb += results.payload.data[col].eq(aligned.data)
            if col == cols - 1:
                m.d.comb += [results.valid.eq(aligned.valid), results.payload.last.eq(aligned.last)]
        return m

    def _accept(self, m, act_fire, weight_fire):
        """Drive the input ``ready`` signals; return WS's first-beat flag and preload row."""
        rows = self.config.rows
        acts, weights = self.activations, self.weights
        if self.config.dataflow == Dataflow.OS:
            # A tile's sums may close only once the previous tile has drained (R cycles), which a register
            # flags (a count compared in front of the handshake was on the 4x4 SoC's worst path, 2026-12-06).
            drain_left = Signal(range(rows + 1))       # (at R = 1 range(rows) would have no bits)
            drained = Signal(init=1)
            last_allowed = ~acts.payload.last | drained
            m.d.comb += [acts.ready.eq(weights.valid & last_allowed),
                         weights.ready.eq(acts.valid & last_allowed)]
            with m.If(act_fire & acts.payload.last):
                m.d.sync += [drain_left.eq(rows - 1), drained.eq(rows == 1)]
            with m.Elif(~drained):
                m.d.sync += [drain_left.eq(drain_left - 1), drained.eq(drain_left == 1)]
            return None, None

        # WS: a tile's first activation needs a complete preload in the shadow registers;
        # the next preload may start in the cycle that first activation is taken.
        expect_first = Signal(init=1)
        shadow_full = Signal()
        preload_row = Signal(row_tag_shape(self.config))
        consume = Signal()
        m.d.comb += [
            acts.ready.eq(~expect_first | shadow_full),
            consume.eq(act_fire & expect_first),
            weights.ready.eq(~shadow_full | consume),
        ]
        with m.If(act_fire):
            m.d.sync += expect_first.eq(acts.payload.last)
        preload_done = weight_fire & (preload_row == rows - 1)
        with m.If(weight_fire):
            m.d.sync += preload_row.eq(Mux(preload_done, 0, preload_row + 1))
        with m.If(preload_done):
            m.d.sync += shadow_full.eq(1)
        with m.Elif(consume):
            m.d.sync += shadow_full.eq(0)
        return expect_first, preload_row

    def _column_output(self, m, column_pes, layout, col):
        output = Signal(layout, name=f"column_{col}")
        # A pipelined PE accumulates its product registers' cycles after its activation arrives.
        product_stage = self.config.product_stages
        if self.config.dataflow == Dataflow.WS:
            bottom = column_pes[-1]
            framing = Signal(2, name=f"column_framing_{col}")
            m.d.comb += framing.eq(Cat(bottom.act_out.valid, bottom.act_out.last))
            framing = _delayed(m, framing, product_stage, f"column_framing_{col}")
            m.d.comb += [output.valid.eq(framing[0]), output.last.eq(framing[1]),
                         output.data.eq(bottom.psum_out)]
            return output
        # OS drain: a one-hot token walks down the column, starting the cycle after the
        # bottom PE closed its tile, and reads one result register per cycle.
        rows = self.config.rows
        bottom_in = column_pes[-1].act_in
        closing = Signal(name=f"closing_{col}")
        m.d.comb += closing.eq(bottom_in.valid & bottom_in.last)
        closing = _delayed(m, closing, product_stage, f"closing_{col}")
        token = Signal(rows, name=f"drain_token_{col}")
        m.d.sync += [
            token.eq((token << 1) | closing),
            output.valid.eq(token.any()),
            output.last.eq(token[rows - 1]),
            output.data.eq(reduce(or_, [Mux(token[row], pe.result, 0) for row, pe in enumerate(column_pes)])),
        ]
        return output

