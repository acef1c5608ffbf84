"""How fragile is a prompt? Perturbations people make by accident, and how far they move the
image distribution (issue 22, seed 001; Gao et al. 2023). See ``docs/robustness.md``.

- :mod:`engine.robustness.perturb` — the typo, glyph and phonetic rules;
- :mod:`engine.robustness.phonetic` — sounds-alike words from the CMU Pronouncing Dictionary;
- :mod:`engine.robustness.mmd` — MMD² and its permutation test;
- :mod:`engine.robustness.features` — the image features MMD is measured in;
- :mod:`engine.robustness.job` — the ``prompt_robustness`` job.
"""
