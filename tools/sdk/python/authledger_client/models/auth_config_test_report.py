from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.auth_config_test_report_class import AuthConfigTestReportClass
from ..models.auth_config_test_report_driver import AuthConfigTestReportDriver
from ..types import UNSET, Unset

T = TypeVar("T", bound="AuthConfigTestReport")


@_attrs_define
class AuthConfigTestReport:
    """
    Attributes:
        ok (bool):
        connector (str): The connector definition's id (`postgres` for the legacy postgres auth type)
        driver (AuthConfigTestReportDriver | Unset):
        class_ (AuthConfigTestReportClass | Unset): When not ok: why, as a troubleshooting table reads
        latency_ms (int | Unset): When ok
        error (str | Unset): When not ok: why the connector could not connect (never a credential)
    """

    ok: bool
    connector: str
    driver: AuthConfigTestReportDriver | Unset = UNSET
    class_: AuthConfigTestReportClass | Unset = UNSET
    latency_ms: int | Unset = UNSET
    error: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ok = self.ok

        connector = self.connector

        driver: str | Unset = UNSET
        if not isinstance(self.driver, Unset):
            driver = self.driver.value

        class_: str | Unset = UNSET
        if not isinstance(self.class_, Unset):
            class_ = self.class_.value

        latency_ms = self.latency_ms

        error = self.error

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "ok": ok,
                "connector": connector,
            }
        )
        if driver is not UNSET:
            field_dict["driver"] = driver
        if class_ is not UNSET:
            field_dict["class"] = class_
        if latency_ms is not UNSET:
            field_dict["latency_ms"] = latency_ms
        if error is not UNSET:
            field_dict["error"] = error

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ok = d.pop("ok")

        connector = d.pop("connector")

        _driver = d.pop("driver", UNSET)
        driver: AuthConfigTestReportDriver | Unset
        if isinstance(_driver, Unset):
            driver = UNSET
        else:
            driver = AuthConfigTestReportDriver(_driver)

        _class_ = d.pop("class", UNSET)
        class_: AuthConfigTestReportClass | Unset
        if isinstance(_class_, Unset):
            class_ = UNSET
        else:
            class_ = AuthConfigTestReportClass(_class_)

        latency_ms = d.pop("latency_ms", UNSET)

        error = d.pop("error", UNSET)

        auth_config_test_report = cls(
            ok=ok,
            connector=connector,
            driver=driver,
            class_=class_,
            latency_ms=latency_ms,
            error=error,
        )

        auth_config_test_report.additional_properties = d
        return auth_config_test_report

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
