"""Ablations of stages 2-3 (``params.yaml: ablation``): bottleneck noise, routing and heads variants,
each trained with the same budget as the reference from the same stage-1 checkpoint.

``variants`` reads and validates the variants, ``routing`` holds the two routing alternatives (a
shared codebook, stems from the stage-2 separator), ``train`` trains one variant end to end.
"""

from __future__ import annotations

from duotok.ablations.variants import FAMILIES, ROUTINGS, Variant, by_family, load_variants, overrides_for

__all__ = ["FAMILIES", "ROUTINGS", "Variant", "by_family", "load_variants", "overrides_for"]
