"""The inventory as YAML text: ``parse`` reads it (refusing duplicate keys, which plain YAML
silently overwrites) and ``to_yaml`` writes it in the documented layout, block style for the
structure and flow style for the leaves.

Neither validates: ``parse`` only insists on a mapping at the top level; ``inventory_check``
does the rest.
"""
from __future__ import annotations

import yaml

from .errors import InventoryError
from .inventory_format import TOP_KEYS

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: big files
_YamlDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _StrictLoader(_YamlLoader):
    """Safe loader that refuses duplicate keys, which plain YAML silently overwrites."""


def _construct_strict_mapping(loader, node):
    loader.flatten_mapping(node)  # resolves "<<" merge keys before we look for duplicates
    seen = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise InventoryError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_strict_mapping)


class _InventoryDumper(_YamlDumper):
    """Block style for structure, flow style for leaves (pools, volumes, tags) to stay readable."""

    def ignore_aliases(self, data) -> bool:
        # A dict used twice (say, one cpu mapping) would otherwise come out as &id001 / *id001.
        return True


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _represent_dict(dumper, data):
    flow = all(_is_scalar(v) or (isinstance(v, list) and all(map(_is_scalar, v)))
               or (isinstance(v, dict) and all(map(_is_scalar, v.values())))
               for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", list(data.items()), flow_style=flow)


def _represent_list(dumper, data):
    flow = all(map(_is_scalar, data))
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_InventoryDumper.add_representer(dict, _represent_dict)
_InventoryDumper.add_representer(list, _represent_list)


def parse(text: str) -> dict:
    """YAML text to an inventory dict (empty text is an empty inventory). Does not validate."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise InventoryError(f"inventory is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InventoryError("inventory: the top level must be a mapping "
                             f"with keys {', '.join(TOP_KEYS)}")
    return data


def to_yaml(data: dict) -> str:
    """An inventory dict as YAML text in the documented layout (what ``dump -o`` writes)."""
    return yaml.dump(data, Dumper=_InventoryDumper, sort_keys=False, width=120,
                     allow_unicode=True, default_flow_style=False)
