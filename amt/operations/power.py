"""Power: the state AMT reports and the changes it can make (DMTF DSP1027, Power State Management).

``CIM_AssociatedPowerManagementService.PowerState`` reports the host's state with the DMTF
values; ``CIM_PowerManagementService.RequestPowerStateChange(PowerState, ManagedElement)``
changes it, ``ManagedElement`` being a reference to ``CIM_ComputerSystem`` named
``ManagedSystem`` (the host, as opposed to the AMT subsystem itself). Its ReturnValue uses the
CIM method codes, not PT_STATUS.
"""

from __future__ import annotations

from enum import IntEnum

from amt.errors import MalformedResponse, ReturnValueError
from amt.wsman.client import WsmanClient
from amt.wsman.values import EndpointReference

__all__ = ["PowerAction", "PowerState", "available_actions", "get_power_state",
           "managed_system", "request_power_change"]

POWER_STATUS_CLASS = "CIM_AssociatedPowerManagementService"
POWER_SERVICE_CLASS = "CIM_PowerManagementService"
POWER_SERVICE_NAME = "Intel(r) AMT Power Management Service"


class PowerState(IntEnum):
    """CIM_AssociatedPowerManagementService.PowerState (DSP1027 values)."""

    OTHER = 1
    ON = 2
    SLEEP_LIGHT = 3
    SLEEP_DEEP = 4
    POWER_CYCLE_OFF_SOFT = 5
    OFF_HARD = 6
    HIBERNATE = 7
    OFF_SOFT = 8
    POWER_CYCLE_OFF_HARD = 9
    MASTER_BUS_RESET = 10
    DIAGNOSTIC_INTERRUPT = 11
    OFF_SOFT_GRACEFUL = 12
    OFF_HARD_GRACEFUL = 13
    MASTER_BUS_RESET_GRACEFUL = 14
    POWER_CYCLE_OFF_SOFT_GRACEFUL = 15
    POWER_CYCLE_OFF_HARD_GRACEFUL = 16

    @property
    def is_on(self) -> bool:
        return self is PowerState.ON

    @property
    def is_asleep(self) -> bool:
        """Sleeping or hibernating: the host can be woken and its AMT still answers."""
        return self in (PowerState.SLEEP_LIGHT, PowerState.SLEEP_DEEP, PowerState.HIBERNATE)

    @property
    def is_off(self) -> bool:
        return self in (PowerState.OFF_HARD, PowerState.OFF_SOFT, PowerState.OFF_SOFT_GRACEFUL,
                        PowerState.OFF_HARD_GRACEFUL)


class PowerAction(IntEnum):
    """The PowerState argument of RequestPowerStateChange, by what it does."""

    ON = 2
    SLEEP = 4
    POWER_CYCLE = 5
    OFF_HARD = 6
    HIBERNATE = 7
    OFF = 8
    RESET = 10
    OFF_GRACEFUL = 12
    RESET_GRACEFUL = 14


# CIM_PowerManagementService.RequestPowerStateChange return codes (CIM method convention).
POWER_CHANGE_RESULTS = {
    0: "COMPLETED", 1: "NOT_SUPPORTED", 2: "UNKNOWN_ERROR", 3: "TIMEOUT", 4: "FAILED",
    5: "INVALID_PARAMETER", 6: "IN_USE", 4096: "JOB_STARTED",
}


def managed_system() -> EndpointReference:
    """The reference RequestPowerStateChange needs: the host's CIM_ComputerSystem."""
    return EndpointReference.to("CIM_ComputerSystem", CreationClassName="CIM_ComputerSystem",
                                Name="ManagedSystem")


async def get_power_state(wsman: WsmanClient) -> PowerState:
    instances = await wsman.enumerate(POWER_STATUS_CLASS)
    if not instances:
        raise MalformedResponse(f"{POWER_STATUS_CLASS} has no instance")
    code = instances[0].integer("PowerState")
    try:
        return PowerState(code)
    except ValueError:
        raise MalformedResponse(f"unknown PowerState {code}") from None


async def available_actions(wsman: WsmanClient) -> list[int]:
    """AvailableRequestedPowerStates: the PowerAction values the device accepts now."""
    instances = await wsman.enumerate(POWER_STATUS_CLASS)
    return instances[0].integers("AvailableRequestedPowerStates") if instances else []


async def request_power_change(wsman: WsmanClient, action: PowerAction) -> None:
    output = await wsman.invoke(POWER_SERVICE_CLASS, "RequestPowerStateChange",
                                {"PowerState": int(action), "ManagedElement": managed_system()},
                                check=False)
    code = output.integer("ReturnValue")
    if code not in (0, 4096):
        raise ReturnValueError("RequestPowerStateChange", code,
                               POWER_CHANGE_RESULTS.get(code, f"UNKNOWN_{code}"))
