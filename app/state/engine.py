"""What the app knows about its engine: connection status, health, models and samplers."""

from __future__ import annotations

from enum import Enum

from engine.protocol import EngineState, Health, ModelInfo, SamplerInfo

from .observable import Observable, Property


class Connection(str, Enum):
    """The engine as the status bar names it."""

    starting = "starting"  # local engine process launched, not listening yet
    connecting = "connecting"  # URL known, first answer pending
    loading = "loading"  # a model is being loaded
    ready = "ready"
    busy = "busy"  # generating
    restarting = "restarting"  # local engine crashed; a new one is on its way
    disconnected = "disconnected"  # no answer (remote down, or gave up restarting)
    stopped = "stopped"

    @property
    def usable(self) -> bool:
        """Whether requests can be sent now."""
        return self in (Connection.ready, Connection.busy, Connection.loading)


def format_bytes(n: int) -> str:
    """``1536 → '1.5 KB'``: decimal units, one decimal place above bytes."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


class EngineInfo(Observable):
    """Observable engine facts, fed by the controller from /v1 answers and events."""

    connection = Property(Connection.starting)
    #: A person-readable line about the connection: why it is down, what happens next.
    detail = Property("")
    url = Property("")
    remote = Property(False)
    health = Property[Health | None](None)
    models = Property[list[ModelInfo]]([])
    #: Whether the engine has answered a model list yet: until then an empty ``models`` means
    #: "not known yet" (the picker says "Loading models…"), not "none on disk".
    models_listed = Property(False)
    samplers = Property[list[SamplerInfo]]([])
    #: Model id being loaded right now, or "".
    loading_model = Property("")

    def update_health(self, health: Health) -> None:
        """Take a Health answer or event; busy/ready/loading follow the engine's state."""
        if any(m.loaded != (m.id == health.model) for m in self.models):
            self.models = [
                m.model_copy(update={"loaded": m.id == health.model}) for m in self.models
            ]
        self.health = health
        if health.state is EngineState.loading:
            self.connection = Connection.loading
        elif health.state is EngineState.busy:
            self.connection = Connection.busy
        elif health.state is EngineState.ready:
            self.connection = Connection.ready
        else:
            self.connection = Connection.connecting

    @property
    def loaded_model(self) -> ModelInfo | None:
        """The model the last Health names (the list's ``loaded`` flags when there is none)."""
        if self.health is not None:
            return next((m for m in self.models if m.id == self.health.model), None)
        return next((m for m in self.models if m.loaded), None)

    @property
    def active_model(self) -> ModelInfo | None:
        """The model a job naming none will use: the loaded one, else the engine's default."""
        loaded = self.loaded_model
        if loaded is not None or self.health is None or not self.health.default_model:
            return loaded
        return next((m for m in self.models if m.id == self.health.default_model), None)

    def status_text(self) -> str:
        """The status bar's engine label."""
        c = self.connection
        text = {
            Connection.starting: "Engine starting…",
            Connection.connecting: "Connecting…",
            Connection.loading: "Loading model…",
            Connection.ready: "Engine ready",
            Connection.busy: "Engine busy",
            Connection.restarting: "Engine crashed → restarting",
            Connection.disconnected: "Engine disconnected",
            Connection.stopped: "Engine stopped",
        }[c]
        if self.remote and c.usable:
            text += " (remote)"
        return text

    def device_text(self) -> str:
        """Device, dtype and memory from the last Health, e.g. ``cpu · float32 · 1.2 GB``."""
        h = self.health
        if h is None:
            return ""
        parts = [h.device, h.dtype]
        if h.memory_used:
            mem = format_bytes(h.memory_used)
            if h.memory_total:
                mem += f" / {format_bytes(h.memory_total)}"
            parts.append(mem)
        if h.memory_peak:
            parts.append(f"peak {format_bytes(h.memory_peak)}")
        if h.fast_path != "off":  # "fast path on", "fast path warming up", "fast path failed"
            parts.append(f"fast path {h.fast_path}")
        if h.offload != "none":
            parts.append(
                {"t5-cpu": "T5 on the CPU", "model": "model offload"}.get(h.offload, h.offload)
            )
        return " · ".join(p for p in parts if p)

    def device_tip(self) -> str:
        """The fast path's detail for the device label's tooltip: its compile mode or why it
        failed, the LoRA slots, and why the last LoRA job ran eager, if it did."""
        h = self.health
        if h is None or h.fast_path == "off" or not h.fast_path_detail:
            return ""
        return f"fast path {h.fast_path}: {h.fast_path_detail}"
