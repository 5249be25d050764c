"""The platform spec: one validated model of the stack's `cnai:` config.

Everything the program does is decided by a `PlatformSpec`. It is read from the Pulumi config in
exactly one place (`load_spec`), validated with pydantic (unknown keys, types, ranges) and then by
cross-field rules (layer requirements, GPU settings, teams). Any problem raises `ConfigError` with one
line naming the config key and what is allowed, before a single resource is registered.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model, field_validator

from modules.shared.cluster_config import EksCluster, ExistingCluster, GkeCluster, KindCluster
from modules.shared.config_types import (
    NAMESPACE_OR_EMPTY,
    OPTIONAL_IMAGE_REF,
    PATTERN_HELP,
    ConfigError,
    DnsLabel,
    Quantity,
    Strict,
    quantity,
)
from modules.shared.sharing_config import Gpu, Team
from modules.shared.versions import VERSIONS

NAMESPACE = "cnai"

# ---------------------------------------------------------------------------------------------
# Layer options: each layer module declares a subclass; `layers` is assembled from the registry.


class LayerOptions(Strict):
    """Options every layer has (deployKF style): enabled, namespace, values overrides. `enabled` defaults
    to the layer's `core` flag (`spec_model`): a layer a stack does not name is off unless it is core."""

    enabled: bool = False
    namespace: str = Field("", pattern=NAMESPACE_OR_EMPTY,
                           description="override the layer's namespace")
    values: dict[str, Any] = Field(default_factory=dict, description="chart values merged over the built ones")


class PlatformSpec(Strict):
    """The whole validated stack config (namespace `cnai:`)."""

    stack: str = "dev"
    environment: Literal["kind", "existing", "eks", "gke"]
    kubernetesVersion: str = VERSIONS.kubernetes_default
    profile: Literal["laptop", "production"] = "laptop"
    gpu: Gpu = Gpu()
    teams: tuple[Team, ...] = Field((), strict=False)
    layers: Any = None  # replaced per registry by `spec_model()`
    kind: KindCluster = KindCluster()
    existing: ExistingCluster = ExistingCluster()
    eks: EksCluster = EksCluster()
    gke: GkeCluster = GkeCluster()
    # Secret key of an external S3 endpoint (cnai:layers.object-store.external); `pulumi config set --secret`.
    objectStoreSecretAccessKey: SecretStr | None = None
    # Client secret of the OpenID Connect app JupyterHub logs in with (cnai:layers.jupyterhub.auth: oidc).
    oidcClientSecret: SecretStr | None = None
    # Hugging Face access token for gated or private models (cnai:layers.llm); `pulumi config set --secret`.
    hfToken: SecretStr | None = None

    @field_validator("kubernetesVersion")
    @classmethod
    def _k8s(cls, v: str) -> str:
        if v not in VERSIONS.kubernetes_supported:
            raise ValueError(f"must be one of {', '.join(VERSIONS.kubernetes_supported)}")
        return v

    def layer(self, name: str) -> LayerOptions:
        return getattr(self.layers, _field(name))

    def enabled_layers(self) -> list[str]:
        return [n for n in type(self.layers).layer_names if self.layer(n).enabled]


def _field(layer_name: str) -> str:
    return layer_name.replace("-", "_")


def spec_model(layers: dict[str, tuple[type[LayerOptions], bool]]) -> type[PlatformSpec]:
    """Build the PlatformSpec model whose `layers` has one typed field per registered layer:
    name -> (its options model, whether it is core, i.e. on unless the stack turns it off)."""
    fields: dict[str, Any] = {}
    for name, (options, core) in layers.items():
        model = create_model(options.__name__, __base__=options, __doc__=options.__doc__,
                             enabled=(bool, Field(core, description="deploy this layer")))
        fields[_field(name)] = (model, Field(default_factory=model, alias=name))
    layers_model = create_model("Layers", __base__=Strict, **fields)
    layers_model.layer_names = tuple(layers)
    return create_model(
        "PlatformSpec",
        __base__=PlatformSpec,
        layers=(layers_model, Field(default_factory=layers_model)),
    )


# ---------------------------------------------------------------------------------------------
# Reading and error reporting

_TOP_LEVEL = [k for k in PlatformSpec.model_fields if k != "stack"]


_SCALARS = ("environment", "kubernetesVersion", "profile", "objectStoreSecretAccessKey", "oidcClientSecret", "hfToken")
# Keys that carry credentials: accepted only when stored encrypted (`pulumi config set --secret`).
SECRET_KEYS = ("objectStoreSecretAccessKey", "oidcClientSecret", "hfToken")


def read_config(raw: dict[str, Any], secret_keys: Any = None) -> dict[str, Any]:
    """Pick the `cnai:` keys out of a flat Pulumi config map, decoding JSON objects as get_object does.
    `secret_keys`: the config keys Pulumi holds encrypted (None: not known, not checked)."""
    data: dict[str, Any] = {}
    for key, value in raw.items():
        ns, _, name = key.partition(":")
        if ns != NAMESPACE:
            continue
        if name in SECRET_KEYS and secret_keys is not None and key not in secret_keys:
            raise ConfigError(f"{key}: is a credential; store it encrypted with "
                              f"`pulumi config set --secret {name} ...`, not as plain text")
        if name not in _TOP_LEVEL:
            close = ", ".join(_TOP_LEVEL)
            raise ConfigError(f"{key}: unknown config key; allowed keys under cnai: are {close}")
        if isinstance(value, str) and name not in _SCALARS:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                shape = "a list" if name == "teams" else "a mapping of keys"
                raise ConfigError(f"{key}: must be {shape} (got {value!r})") from None
        data[name] = value
    return data


def parse_spec(data: dict[str, Any], model: type[PlatformSpec], stack: str) -> PlatformSpec:
    try:
        return model.model_validate({**data, "stack": stack})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, model)) from None


def _key(loc: tuple) -> str:
    out = NAMESPACE + ":"
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("" if i == 0 else ".") + str(part)
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = next((f for n, f in cur.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        ann = field.annotation
        for candidate in getattr(ann, "__args__", ()) + (ann,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                cur = candidate
                break
        else:
            return []
    return [f.alias or n for n, f in cur.model_fields.items() if n != "stack"]


_WORDS = {
    "string_type": "must be a string", "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number", "float_type": "must be a number", "float_parsing": "must be a number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping of keys", "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys", "list_type": "must be a list", "tuple_type": "must be a list",
    "set_type": "must be a list", "none_required": "must be empty (null)",
}


def _entries(n: Any) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _words(err: dict[str, Any]) -> str:
    """What is wrong with one value, in the project's words (no validation library's phrasing)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    value = err.get("input")
    got = f" (got {value!r})" if not isinstance(value, (dict, list, tuple)) else ""
    if kind in _WORDS:
        return _WORDS[kind] + got
    if kind in ("literal_error", "enum"):
        return f"must be one of {ctx.get('expected')}" + got
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        return PATTERN_HELP.get(pattern, f"must match the pattern {pattern}") + got
    limits = {"string_too_long": f"must be at most {ctx.get('max_length')} characters",
              "string_too_short": "must not be empty" if ctx.get("min_length") == 1
              else f"must be at least {ctx.get('min_length')} characters",
              "too_long": f"must have at most {_entries(ctx.get('max_length'))}",
              "too_short": f"must have at least {_entries(ctx.get('min_length'))}",
              "greater_than": f"must be greater than {ctx.get('gt')}",
              "greater_than_equal": f"must be at least {ctx.get('ge')}",
              "less_than": f"must be less than {ctx.get('lt')}",
              "less_than_equal": f"must be at most {ctx.get('le')}"}
    if kind in limits:
        return limits[kind] + got
    if kind == "value_error":  # our own validators' messages
        return str(ctx.get("error") or err["msg"]).removeprefix("Value error, ") + got
    return "is not a value this key accepts (see docs/configuration.md)" + got


def _one_line(exc: ValidationError, model: type[BaseModel]) -> str:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = _key(loc)
    if err["type"] == "extra_forbidden":
        msg = f"unknown key; allowed keys here are {', '.join(_allowed_keys(model, loc))}"
    elif err["type"] == "missing":
        msg = "is required"
    else:
        msg = _words(err)
    more = len(exc.errors()) - 1
    return f"{key}: {msg}" + (f" [and {more} more problem{'s' * (more > 1)}]" if more else "")


# What layers and cluster modules import from here (some defined in config_types).
__all__ = ["ConfigError", "DnsLabel", "Gpu", "LayerOptions", "OPTIONAL_IMAGE_REF", "PlatformSpec", "Quantity", "Strict",
           "Team", "parse_spec", "quantity", "read_config", "spec_model"]
