"""A software Intel AMT device: WS-Management over HTTP(S) with AMT's auth, realms and storage."""

from amt.device.power import PowerHooks
from amt.device.server import SoftwareAmtDevice
from amt.device.state import DeviceState, StorageLimits
from amt.device.tls import TlsCertificate

__all__ = ["DeviceState", "PowerHooks", "SoftwareAmtDevice", "StorageLimits", "TlsCertificate"]
