"""Every address an EHR stand-in publishes, from its vendor's URL shapes (epic.py, cerner.py)."""

from __future__ import annotations

from dev.sandbox.ehr.variants import VARIANTS


class EhrAddresses:
    """Mixed into EhrStandIn: the URLs of each surface, and the CLI's description."""

    @property
    def fhir_base(self) -> str:
        return self.url(self.fhir_paths["R4"])

    @property
    def dstu2_base(self) -> str | None:
        path = self.fhir_paths.get("DSTU2")
        return self.url(path) if path else None

    def variant_base(self, kind: str) -> str:
        if kind not in VARIANTS:
            raise KeyError(f"unknown variant {kind!r}; known: {sorted(VARIANTS)}")
        return self.url(f"/variant/{kind}{self.fhir_paths['R4']}")

    @property
    def smart_configuration_url(self) -> str:
        return f"{self.fhir_base}/.well-known/smart-configuration"

    @property
    def authorize_url(self) -> str:
        """The advertised authorization endpoint."""
        return self.url(self.advertised_authorize_path)

    @property
    def authorize_urls(self) -> dict[str, str]:
        """Every authorization endpoint (Cerner: one per persona) -> its persona."""
        return {self.url(p): persona or "by scopes" for p, persona in self.authorize_paths.items()}

    @property
    def token_url(self) -> str:
        return self.url(self.token_path)

    @property
    def issuer(self) -> str:
        return self.url(self.issuer_path)

    @property
    def openid_configuration_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def jwks_uri(self) -> str:
        return self.url(self.jwks_path)

    @property
    def schedule_url(self) -> str:
        return self.url("/schedule")

    @property
    def portal_url(self) -> str:
        return self.url(self.portal_path)

    def known_bases(self) -> list[str]:
        """Every FHIR base of this EHR: valid ``iss`` / ``aud`` values, compared exactly."""
        bases = [self.url(path) for path in self.fhir_paths.values()]
        return bases + [self.variant_base(kind) for kind in VARIANTS]

    def describe(self) -> dict[str, str]:
        lines = {"origin": self.origin, "FHIR R4 base (iss)": self.fhir_base}
        if self.dstu2_base:
            lines["FHIR DSTU2 base"] = self.dstu2_base
        lines.update(
            {
                "smart-configuration": self.smart_configuration_url,
                "authorize": " | ".join(self.authorize_urls),
                "token": self.token_url,
                "issuer": self.issuer,
                "JWKS": self.jwks_uri,
                "schedule (provider launch)": self.schedule_url,
                f"{self.portal_name} (patient launch)": self.portal_url,
                "launch URLs": f"{self.launch_urls['provider']} | {self.launch_urls['patient']}",
                "clients": ", ".join(
                    f"{c.client_id} ({c.auth_method})" for c in self.clients.all()
                ),
                "variants": self.url(f"/variant/{{kind}}{self.fhir_paths['R4']}")
                + f"  kinds: {', '.join(VARIANTS)}",
                "control": f"{self.control_url}/  (launch, clients, quirks, settings, data)",
            }
        )
        return lines
