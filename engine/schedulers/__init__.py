"""Schedulers diffusers does not ship, with the diffusers scheduler interface."""

from engine.schedulers.analytic_dpm import AnalyticDPMScheduler
from engine.schedulers.dpmsolver_sde import DPMSolverSDEScheduler
from engine.schedulers.flow_heun import FlowHeunScheduler

__all__ = ["AnalyticDPMScheduler", "DPMSolverSDEScheduler", "FlowHeunScheduler"]
