"""Site export shapes: the same synthetic tables written as the different sites really export them.

`canonical` is the contract itself; `semicolon` a European EHR's Latin-1 semicolon CSV (dd.mm.yyyy, decimal
commas, rates in mg/kg/h, pain on a 0–100 mm VAS); `excel` a workbook with a sheet per table (weights in lb,
times in UTC); `redcap` a REDCap longitudinal flat CSV. Each has its mapping file in `sites/`.
"""

from .written import SHAPES, ShapeWritten, write_shape

__all__ = ["SHAPES", "ShapeWritten", "write_shape"]
