"""AMT_GeneralSettings, AMT_EthernetPortSettings and CIM_SoftwareIdentity on the device.

Property sets and names follow what AMT 11+ firmware returns (alphabetical, as the firmware
lists them). Only HostName and DomainName are writable here; a Put must carry the whole
instance (missing keys or a wrong InstanceID are a fault, as on AMT).
"""

from __future__ import annotations

from amt.device.resources import (
    Caller,
    DeviceFault,
    Properties,
    Resource,
    WsmanRequest,
    select,
)
from amt.wsman.values import CimInstance

__all__ = ["EthernetPortSettings", "GeneralSettings", "SoftwareIdentity"]

GENERAL_ID = "Intel(r) AMT: General Settings"
ETHERNET_ID = "Intel(r) AMT Ethernet Port Settings 0"
MAX_HOSTNAME = 63


class GeneralSettings(Resource):
    class_name = "AMT_GeneralSettings"

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        s = self.state
        return {"AMTNetworkEnabled": 1, "DDNSPeriodicUpdateInterval": 1440, "DDNSTTL": 900,
                "DDNSUpdateByDHCPServerEnabled": True, "DDNSUpdateEnabled": False,
                "DHCPv6ConfigurationTimeout": 0, "DigestRealm": s.realm,
                "DomainName": s.domain, "ElementName": GENERAL_ID, "HostName": s.hostname,
                "HostOSFQDN": f"{s.hostname}.{s.domain}", "IdleWakeTimeout": 65535,
                "InstanceID": GENERAL_ID, "NetworkInterfaceEnabled": True,
                "PingResponseEnabled": True, "PowerSource": 0, "PreferredAddressFamily": 0,
                "PresenceNotificationInterval": 0, "PrivacyLevel": 0,
                "RmcpPingResponseEnabled": True, "SharedFQDN": True,
                "ThunderboltDockEnabled": 0, "WsmanOnlyMode": False}

    def put(self, request: WsmanRequest, instance: CimInstance, caller: Caller) -> Properties:
        if request.selectors and request.selectors.get("InstanceID") != GENERAL_ID:
            raise DeviceFault("InvalidSelectors")
        if instance.text("InstanceID", "") != GENERAL_ID:
            raise DeviceFault("SchemaValidationError", "InstanceID is missing or wrong")
        hostname = instance.text("HostName", "").strip()
        domain = instance.text("DomainName", "").strip()
        if not hostname or len(hostname) > MAX_HOSTNAME or len(domain) > 191:
            raise DeviceFault("SchemaValidationError", "HostName or DomainName out of range")
        self.state.hostname, self.state.domain = hostname, domain
        self.context.changed()
        return self.get(request, caller)


class EthernetPortSettings(Resource):
    class_name = "AMT_EthernetPortSettings"

    def instances(self, caller: Caller) -> list[Properties]:
        s = self.state
        return [{"DHCPEnabled": True, "DefaultGateway": "", "ElementName":
                 "Intel(r) AMT Ethernet Port Settings", "IPAddress": s.ip_address,
                 "InstanceID": ETHERNET_ID, "IpSyncEnabled": True, "LinkIsUp": True,
                 "LinkPolicy": [1, 14, 16], "LinkPreference": 1, "LinkControl": 2,
                 "MACAddress": s.mac_address, "PhysicalConnectionType": 0,
                 "PrimaryDNS": "", "SharedDynamicIP": True, "SharedMAC": True,
                 "SharedStaticIp": False, "SubnetMask": "255.255.255.0"}]

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return select(self.instances(caller), request.selectors)


class SoftwareIdentity(Resource):
    class_name = "CIM_SoftwareIdentity"

    def instances(self, caller: Caller) -> list[Properties]:
        version = self.state.amt_version
        build = version.rsplit(".", 1)[-1]
        rows = [("Flash", version), ("Netstack", version), ("AMTApps", version),
                ("AMT", version), ("Sku", "16392"), ("VendorID", "8086"),
                ("Build Number", build), ("Recovery Version", version),
                ("Recovery Build Num", build), ("Legacy Mode", "False")]
        return [{"InstanceID": iid, "IsEntity": True, "VersionString": value}
                for iid, value in rows]

    def get(self, request: WsmanRequest, caller: Caller) -> Properties:
        return select(self.instances(caller), request.selectors)
