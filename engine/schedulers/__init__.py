"""Schedulers diffusers does not ship, with the diffusers scheduler interface."""

from engine.schedulers.analytic_dpm import AnalyticDPMScheduler

__all__ = ["AnalyticDPMScheduler"]
