"""Synthetic landing data for ketreg: sites' exports of IV ketamine infusions, with optional known faults.

`generate_landing(out_dir, sites, patients_per_site, seed, error_rate)` writes one folder per site export in
the canonical site-export contract v1 and a `.generator-manifest.json` listing every injected fault.
"""

from .generate import GenerationSummary, generate_landing

__all__ = ["GenerationSummary", "generate_landing"]
