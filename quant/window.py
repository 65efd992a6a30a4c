"""LOAD descriptors for one window tap over a feature map (convolution, pooling, depthwise).

For output rows ``first_row ..`` and output columns ``first_col ..`` of a
window with ``stride`` and tap offset ``offset`` (``(dy - pad_top, dx - pad_left)``),
the input pixels form a 3-D descriptor (``hdl.walker``): blocks are output
rows, rows are output columns, groups are channel blocks; pixels outside the
image are padding blocks (y) and padding rows (x), and ``rows`` beyond the
output columns (a short segment) are trailing padding rows.
"""
from .memory import FeatureMap

__all__ = ["window_fields"]


def _valid_range(count: int, offset: int, stride: int, extent: int) -> tuple[int, int]:
    """Outputs o < count whose input o * stride + offset lies in [0, extent): (first, end), first <= end."""
    first = min(count, -(offset // stride) if offset < 0 else 0)
    end = min(count, (extent - 1 - offset) // stride + 1) if extent - 1 - offset >= 0 else 0
    return first, max(first, end)


def window_fields(x: FeatureMap, *, block: int, first_row: int, out_rows: int, first_col: int, out_cols: int,
                  stride: tuple[int, int], offset: tuple[int, int], rows: int | None = None,
                  groups: int = 1) -> dict:
    """LOAD fields (all but target, sram_addr, row_elems and what the target adds) for one tap.

    ``rows`` (default ``out_cols``) SRAM rows per output row; ``groups``
    consecutive channel blocks from ``block`` on.
    """
    rows = out_cols if rows is None else rows
    y_offset, x_offset = first_row * stride[0] + offset[0], first_col * stride[1] + offset[1]
    y_first, y_end = _valid_range(out_rows, y_offset, stride[0], x.height)
    x_first, x_end = _valid_range(out_cols, x_offset, stride[1], x.width)
    data = y_end > y_first and x_end > x_first
    address = x.pixel_address(block, y_offset + y_first * stride[0], x_offset + x_first * stride[1]) if data \
        else x.address
    return {"dram_addr": address, "rows": rows, "row_stride": stride[1] * x.row_stride, "blocks": out_rows,
            "block_stride": stride[0] * x.width * x.row_stride, "groups": groups, "group_stride": x.block_stride,
            "pad_before": x_first if data else rows, "pad_after": rows - x_end if data else 0,
            "pad_blocks_before": y_first if data else out_rows, "pad_blocks_after": out_rows - y_end if data else 0}
