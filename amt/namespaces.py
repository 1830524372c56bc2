"""XML namespaces, resource URIs and action URIs of WS-Management as Intel AMT speaks it.

The one home of these strings: the client (``amt.wsman``), the typed operations and the
software device (``amt.device``) all import them from here.
"""

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
ENUMERATION = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CIM_COMMON = "http://schemas.dmtf.org/wbem/wscim/1/common"
TRUST = "http://schemas.xmlsoap.org/ws/2005/02/trust"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
CIM_BINDING = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
EVENTING = "http://schemas.xmlsoap.org/ws/2004/08/eventing"

# Resource URI prefixes: a class's resource URI is prefix + class name.
CIM = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
AMT = "http://intel.com/wbem/wscim/1/amt-schema/1/"
IPS = "http://intel.com/wbem/wscim/1/ips-schema/1/"

ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

ACTION_GET = TRANSFER + "/Get"
ACTION_GET_RESPONSE = TRANSFER + "/GetResponse"
ACTION_PUT = TRANSFER + "/Put"
ACTION_PUT_RESPONSE = TRANSFER + "/PutResponse"
ACTION_CREATE = TRANSFER + "/Create"
ACTION_CREATE_RESPONSE = TRANSFER + "/CreateResponse"
ACTION_DELETE = TRANSFER + "/Delete"
ACTION_DELETE_RESPONSE = TRANSFER + "/DeleteResponse"
ACTION_ENUMERATE = ENUMERATION + "/Enumerate"
ACTION_ENUMERATE_RESPONSE = ENUMERATION + "/EnumerateResponse"
ACTION_PULL = ENUMERATION + "/Pull"
ACTION_PULL_RESPONSE = ENUMERATION + "/PullResponse"
ACTION_RELEASE = ENUMERATION + "/Release"
ACTION_FAULT = ADDRESSING + "/fault"
ACTION_WSMAN_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

# The prefixes real AMT firmware declares on the root of every reply (a: soap, b: addressing,
# c: wsman, ...); g: and h: are then bound per reply to the class or enumeration namespace.
REPLY_PREFIXES = {
    "a": SOAP,
    "b": ADDRESSING,
    "c": WSMAN,
    "d": TRUST,
    "e": WSSE,
    "f": CIM_BINDING,
}

HTTP_PORT = 16992
TLS_PORT = 16993


def resource_uri(class_name: str) -> str:
    """The resource URI of a class by its prefix: CIM_, AMT_ or IPS_."""
    prefix = class_name.split("_", 1)[0]
    base = {"CIM": CIM, "AMT": AMT, "IPS": IPS}.get(prefix)
    if base is None:
        raise ValueError(f"not a CIM, AMT or IPS class name: {class_name!r}")
    return base + class_name


def method_action(class_name: str, method: str) -> str:
    """The action URI of a method invocation: resource URI + '/' + method name."""
    return resource_uri(class_name) + "/" + method


def class_name_of(uri: str) -> str:
    """The class name a resource URI ends with (the inverse of ``resource_uri``)."""
    return uri.rsplit("/", 1)[-1]
