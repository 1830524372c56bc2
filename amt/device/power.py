"""The simulated host's power, and the two power classes that report and change it.

AMT reports the host's ACPI state as a DMTF PowerState (S0 = 2 on, S3 = 4 sleep-deep,
S4 = 7 hibernate, S5 = 8 off-soft) and changes it with RequestPowerStateChange. Here the
host is whatever the test harness makes of it: ``PowerHooks`` are called when the host goes
down (``on_sleep(new_state)``), comes up (``on_wake()``) or is reset (``on_reset()``), so a
test can stop and start that host's agent. Hooks may be plain functions or coroutines;
coroutines run as tasks of the device's loop. The same hooks fire when a test puts the host
to sleep itself (``PowerController.set_state``), as an OS going to sleep would.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from amt.device.resources import (
    Caller,
    DeviceContext,
    MethodResult,
    Properties,
    Resource,
    WsmanRequest,
)
from amt.operations.power import POWER_SERVICE_NAME, PowerAction, PowerState, managed_system
from amt.wsman.values import CimInstance, EndpointReference
from meshagent.log import get_logger

__all__ = ["PowerController", "PowerHooks", "PowerManagementService", "PowerStatus"]

log = get_logger(__name__)

Hook = Callable[..., Awaitable[None] | None]

# RequestPowerStateChange codes (CIM method convention, as AMT returns them).
COMPLETED, NOT_SUPPORTED, INVALID_PARAMETER = 0, 1, 5

_RESULT_OF_ACTION = {
    PowerAction.ON: PowerState.ON,
    PowerAction.SLEEP: PowerState.SLEEP_DEEP,
    PowerAction.HIBERNATE: PowerState.HIBERNATE,
    PowerAction.OFF: PowerState.OFF_SOFT,
    PowerAction.OFF_HARD: PowerState.OFF_SOFT,
    PowerAction.OFF_GRACEFUL: PowerState.OFF_SOFT,
}
_RESETS = (PowerAction.RESET, PowerAction.POWER_CYCLE, PowerAction.RESET_GRACEFUL)


@dataclass
class PowerHooks:
    on_sleep: Hook | None = None  # (new_state: PowerState) -> None
    on_wake: Hook | None = None  # () -> None
    on_reset: Hook | None = None  # () -> None


def available_actions(state: PowerState) -> list[int]:
    """AvailableRequestedPowerStates for the current state, as AMT lists them."""
    if state.is_on:
        return [int(a) for a in (PowerAction.POWER_CYCLE, PowerAction.HIBERNATE,
                                 PowerAction.OFF, PowerAction.RESET, PowerAction.SLEEP,
                                 PowerAction.OFF_GRACEFUL, PowerAction.RESET_GRACEFUL)]
    if state.is_asleep:
        return [int(PowerAction.ON), int(PowerAction.OFF)]
    return [int(PowerAction.ON)]


class PowerController:
    """Holds the host's power state and calls the hooks on every transition."""

    def __init__(self, context: DeviceContext, hooks: PowerHooks | None = None) -> None:
        self.context = context
        self.hooks = hooks or PowerHooks()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def state(self) -> PowerState:
        return PowerState(self.context.state.power_state)

    def _fire(self, hook: Hook | None, *args: object) -> None:
        if hook is None:
            return
        result = hook(*args)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def set_state(self, new: PowerState) -> None:
        """Move the host to ``new`` (as its OS would) and fire the matching hook."""
        old = self.state
        if new == old:
            return
        self.context.state.power_state = int(new)
        self.context.changed()
        log.event("amt_sim_power", old=old.name, new=new.name)
        if new.is_on:
            self._fire(self.hooks.on_wake)
        elif old.is_on:
            self._fire(self.hooks.on_sleep, new)

    def request(self, action: int) -> int:
        """RequestPowerStateChange: a CIM return code."""
        try:
            wanted = PowerAction(action)
        except ValueError:
            return INVALID_PARAMETER
        if wanted == PowerAction.ON and self.state.is_on:
            return COMPLETED  # already on: nothing to do, as AMT answers a redundant power-up
        if int(wanted) not in available_actions(self.state):
            return NOT_SUPPORTED
        if wanted in _RESETS:
            log.event("amt_sim_power", action=wanted.name)
            self._fire(self.hooks.on_reset)
            return COMPLETED
        self.set_state(_RESULT_OF_ACTION[wanted])
        return COMPLETED

    async def drain(self) -> None:
        """Wait for hook coroutines already started (used when stopping the device)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _service_reference() -> EndpointReference:
    return EndpointReference.to(
        "CIM_PowerManagementService", CreationClassName="CIM_PowerManagementService",
        Name=POWER_SERVICE_NAME, SystemCreationClassName="CIM_ComputerSystem",
        SystemName="Intel(r) AMT")


class PowerStatus(Resource):
    """CIM_AssociatedPowerManagementService: the host's power state (enumerated)."""

    class_name = "CIM_AssociatedPowerManagementService"

    def __init__(self, context: DeviceContext, power: PowerController) -> None:
        super().__init__(context)
        self.power = power

    def instances(self, caller: Caller) -> list[Properties]:
        state = self.power.state
        return [{"AvailableRequestedPowerStates": available_actions(state),
                 "PowerState": int(state), "RequestedPowerState": int(state),
                 "ServiceProvided": _service_reference(), "UserOfService": managed_system()}]

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return self.instances(caller)[0]


class PowerManagementService(Resource):
    """CIM_PowerManagementService: RequestPowerStateChange."""

    class_name = "CIM_PowerManagementService"

    def __init__(self, context: DeviceContext, power: PowerController) -> None:
        super().__init__(context)
        self.power = power
        self.methods = {"RequestPowerStateChange": self._request_power_state_change}

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return {"CreationClassName": "CIM_PowerManagementService",
                "ElementName": "Intel(r) AMT Power Management Service", "EnabledState": 5,
                "Name": POWER_SERVICE_NAME, "RequestedState": 12,
                "SystemCreationClassName": "CIM_ComputerSystem", "SystemName": "Intel(r) AMT"}

    def _request_power_state_change(self, params: CimInstance, caller: Caller) -> MethodResult:
        target = params.reference("ManagedElement")
        if target.class_name != "CIM_ComputerSystem" or \
                target.selector("Name") != "ManagedSystem":
            return MethodResult(INVALID_PARAMETER)
        return MethodResult(self.power.request(params.integer("PowerState")))
