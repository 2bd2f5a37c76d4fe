from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.update_auth_config_api_key_location import UpdateAuthConfigApiKeyLocation

T = TypeVar("T", bound="UpdateAuthConfigApiKey")


@_attrs_define
class UpdateAuthConfigApiKey:
    """
    Attributes:
        key_name (str):
        location (UpdateAuthConfigApiKeyLocation):
        prefix (None | str):
    """

    key_name: str
    location: UpdateAuthConfigApiKeyLocation
    prefix: None | str

    def to_dict(self) -> dict[str, Any]:
        key_name = self.key_name

        location = self.location.value

        prefix: None | str
        prefix = self.prefix

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "key_name": key_name,
                "location": location,
                "prefix": prefix,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        key_name = d.pop("key_name")

        location = UpdateAuthConfigApiKeyLocation(d.pop("location"))

        def _parse_prefix(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        prefix = _parse_prefix(d.pop("prefix"))

        update_auth_config_api_key = cls(
            key_name=key_name,
            location=location,
            prefix=prefix,
        )

        return update_auth_config_api_key
