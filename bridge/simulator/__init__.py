"""A faithful, stateful simulator of the mobile-pay centre, the offline gateway and the face terminal."""
from .config import SimulatorConfig
from .server import RunningSimulator, start_simulator

__all__ = ["SimulatorConfig", "RunningSimulator", "start_simulator"]
