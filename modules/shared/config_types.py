"""Config building blocks: value patterns with their one-line help, quantities, the strict base model and
the config error every check raises."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Kubernetes resource.Quantity (decimal/binary SI suffixes or an exponent), as the API server parses it.
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[mkMGTPE]|[KMGTPE]i)?$")
SUFFIX = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
NAMESPACE_OR_EMPTY = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"
PATTERN_HELP = {
    DNS_LABEL.pattern: "must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
    DNS_SUBDOMAIN: "must be a DNS subdomain: lowercase letters, digits, '-' and '.'",
    NAMESPACE_OR_EMPTY: "must be empty or a namespace name (lowercase letters, digits and '-')",
    r"^[a-z0-9.-]+$": "must be a MIG profile name such as all-1g.10gb",
    r"^[A-Za-z0-9._-]*$": "must be a GPU product label value such as NVIDIA-A100-SXM4-40GB",
    r"^([a-z]+(-[a-z]+)+-?[0-9])?$": "must be a cloud region such as us-west-2 or europe-west4",
    r"^([a-z][-a-z0-9]{4,28}[a-z0-9])?$": "must be a Google Cloud project id",
    r"^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+$": "must be an IAM role or user ARN",
    r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$": "must be an IPv4 CIDR such as 10.0.0.0/16",
    r"^([a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?)?$":
        "must be empty or a bucket name prefix (lowercase letters, digits, '-')",
    r"^(\S+ ){5}\S+$": "must be a six-field cron expression, seconds first, such as '0 0 2 * * *'",
    r"^[1-9][0-9]*[dwm]$": "must be a count of days, weeks or months such as 30d, 4w or 6m",
    r"^[0-9]+[smh]$": "must be a duration in seconds, minutes or hours such as 10m",
    r"^([0-9]+[hdwy])?$": "must be empty or a duration such as 12h, 15d, 2w or 1y",
    r"^https?://[^/\s]+$": "must be a URL of scheme and host only, such as https://s3.example.com",
    r"^https://": "must be an https:// URL",
    r"^[a-z0-9.-]*$": "must be lowercase letters, digits, '.' and '-'",
}
CIDR = r"^([0-9]{1,3}\.){3}[0-9]{1,3}/[0-9]{1,2}$"
BUCKET_PREFIX = r"^([a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?)?$"
Cidr = Annotated[str, Field(pattern=CIDR)]
# An image reference: name[:tag][@sha256:digest]
IMAGE_REF = r"^[^\s:@]+(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
OPTIONAL_IMAGE_REF = f"^({IMAGE_REF[1:-1]})?$"
PATTERN_HELP[IMAGE_REF] = "must be an image reference such as registry/name:tag"
PATTERN_HELP[OPTIONAL_IMAGE_REF] = "must be empty or an image reference such as registry/name:tag"
ImageRef = Annotated[str, Field(pattern=IMAGE_REF)]


class ConfigError(Exception):
    """A stack config problem, reported as one line naming the key and what is allowed."""


def quantity(value: str) -> Decimal:
    """Parse a Kubernetes quantity ("500m", "8Gi", "2") to a Decimal in base units."""
    m = QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = Decimal(m.group(1)), m.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(SUFFIX[suffix])


def _check_quantity(v: str) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not QUANTITY.match(v) or quantity(v) < 0:
        raise ValueError("must be a Kubernetes quantity such as '500m', '2' or '8Gi'")
    return v


Quantity = Annotated[str, BeforeValidator(_check_quantity)]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL.pattern)]
DnsSubdomain = Annotated[str, Field(pattern=DNS_SUBDOMAIN)]


class Strict(BaseModel):
    """Base for config models: unknown keys are typos, and values are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)



EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
OPTIONAL_EMAIL = f"^({EMAIL[1:-1]})?$"
PATTERN_HELP[EMAIL] = "must be an email address such as alice@example.com"
PATTERN_HELP[OPTIONAL_EMAIL] = "must be empty or an email address such as alice@example.com"
# 200: a contributor binding is named user-<email>-clusterrole-edit, at most 253 characters.
Email = Annotated[str, Field(pattern=EMAIL, max_length=200)]
