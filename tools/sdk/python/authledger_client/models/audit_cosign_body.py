from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="AuditCosignBody")


@_attrs_define
class AuditCosignBody:
    """
    Attributes:
        witness_key (str): signed-note verifier key: <name>+<hex key id>+<base64(0x04 || Ed25519 public key)>
        cosignature (str): base64(key id (4) || timestamp (8, big-endian) || signature (64))
    """

    witness_key: str
    cosignature: str

    def to_dict(self) -> dict[str, Any]:
        witness_key = self.witness_key

        cosignature = self.cosignature

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "witness_key": witness_key,
                "cosignature": cosignature,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        witness_key = d.pop("witness_key")

        cosignature = d.pop("cosignature")

        audit_cosign_body = cls(
            witness_key=witness_key,
            cosignature=cosignature,
        )

        return audit_cosign_body
