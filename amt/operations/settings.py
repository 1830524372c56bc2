"""Identity and settings: AMT_GeneralSettings, AMT_EthernetPortSettings, CIM_SoftwareIdentity.

``AMT_GeneralSettings`` holds the host name, domain and the ``DigestRealm`` every digest
password is computed against; renaming is a Put of the whole instance with a new HostName
(AMT refuses partial instances). The AMT firmware version is the ``VersionString`` of the
``CIM_SoftwareIdentity`` whose InstanceID is ``AMT``.
"""

from __future__ import annotations

from dataclasses import dataclass

from amt.errors import MalformedResponse
from amt.wsman.client import WsmanClient
from amt.wsman.values import CimInstance

__all__ = ["EthernetPortSettings", "GeneralSettings", "amt_version", "ethernet_ports",
           "general_settings", "rename"]

GENERAL_SETTINGS = "AMT_GeneralSettings"
ETHERNET_PORT_SETTINGS = "AMT_EthernetPortSettings"
SOFTWARE_IDENTITY = "CIM_SoftwareIdentity"


@dataclass(frozen=True)
class GeneralSettings:
    hostname: str
    domain: str
    digest_realm: str
    network_enabled: bool
    raw: CimInstance

    @classmethod
    def from_instance(cls, instance: CimInstance) -> GeneralSettings:
        return cls(hostname=instance.text("HostName", ""),
                   domain=instance.text("DomainName", ""),
                   digest_realm=instance.text("DigestRealm"),
                   network_enabled=instance.boolean("AMTNetworkEnabled", True),
                   raw=instance)


@dataclass(frozen=True)
class EthernetPortSettings:
    instance_id: str
    mac_address: str
    link_is_up: bool
    dhcp_enabled: bool
    ip_address: str
    raw: CimInstance

    @classmethod
    def from_instance(cls, instance: CimInstance) -> EthernetPortSettings:
        return cls(instance_id=instance.text("InstanceID"),
                   mac_address=instance.text("MACAddress", ""),
                   link_is_up=instance.boolean("LinkIsUp", False),
                   dhcp_enabled=instance.boolean("DHCPEnabled", False),
                   ip_address=instance.text("IPAddress", ""),
                   raw=instance)


async def general_settings(wsman: WsmanClient) -> GeneralSettings:
    return GeneralSettings.from_instance(await wsman.get(GENERAL_SETTINGS))


async def rename(wsman: WsmanClient, hostname: str, domain: str | None = None) -> GeneralSettings:
    """Set the AMT host name (and domain): Get, change, Put back the whole instance."""
    current = await wsman.get(GENERAL_SETTINGS)
    properties = dict(current.properties)
    properties["HostName"] = hostname
    if domain is not None:
        properties["DomainName"] = domain
    updated = await wsman.put(GENERAL_SETTINGS, properties,
                              {"InstanceID": current.text("InstanceID")})
    return GeneralSettings.from_instance(updated)


async def ethernet_ports(wsman: WsmanClient) -> list[EthernetPortSettings]:
    return [EthernetPortSettings.from_instance(item)
            for item in await wsman.enumerate(ETHERNET_PORT_SETTINGS)]


async def amt_version(wsman: WsmanClient) -> str:
    for identity in await wsman.enumerate(SOFTWARE_IDENTITY):
        if identity.text("InstanceID", "") == "AMT":
            return identity.text("VersionString")
    raise MalformedResponse("no CIM_SoftwareIdentity with InstanceID 'AMT'")
