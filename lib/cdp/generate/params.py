"""What the generator makes: population shape, channel mix and noise rates, with realistic defaults.

Every rate is a command-line option of `cdp generate` (the field name with dashes) and is documented
once, here: `--help` and the README table are made from these fields.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from cdp.errors import ConfigError


def _rate(default: float, help: str) -> float:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Mix:
    """Who is where and how people buy. Rates are shares of persons unless stated."""

    member_rate: float = _rate(0.55, "persons registered in the CRM")
    pos_buyer_rate: float = _rate(0.45, "persons who buy in stores")
    ecom_buyer_rate: float = _rate(0.40, "persons who buy online (marketplaces or the own mall)")
    wechat_rate: float = _rate(0.50, "persons who follow the official account or use the mini-program")
    app_rate: float = _rate(0.25, "persons who use the brand's app")
    mother_rate: float = _rate(0.35, "women aged 20-40 who have or expect a baby during the two years")
    churn_rate: float = _rate(0.30, "buyers who stop buying at some point")
    reactivation_rate: float = _rate(0.30, "churned buyers who come back after 2-10 months")
    promo_rate: float = _rate(0.25, "chance that an active buyer buys on each 618 and Double 11")
    events_per_app_user: float = _rate(30.0, "mean number of app events per app user")


@dataclass(frozen=True)
class Noise:
    """How the channels damage identifiers and records."""

    variant_rate: float = _rate(
        0.20, "phones/emails written a non-canonical way (+86 138 0013 8000, full-width, upper-case)"
    )
    typo_rate: float = _rate(0.03, "names typed with one wrong character")
    missing_rate: float = _rate(0.05, "optional fields (email, birthday, gender, address) left empty")
    duplicate_rate: float = _rate(0.01, "records delivered twice")
    placeholder_rate: float = _rate(0.01, "CRM records with a placeholder phone, email or card (13800000000, ...)")
    store_phone_rate: float = _rate(0.10, "card-less store orders where the cashier typed the store's own phone")
    typed_mobile_rate: float = _rate(0.35, "card-less store orders where the cashier typed the customer's mobile")
    family_phone_rate: float = _rate(0.03, "persons who give a family member's mobile as their own (at most 0.5)")
    recycled_device_rate: float = _rate(0.02, "app users whose device was used before by another app user")
    double_member_rate: float = _rate(0.03, "members registered twice (second card, another store)")
    malformed_rate: float = _rate(0.001, "lines broken in transfer (truncated, stray delimiter)")
    bad_date_rate: float = _rate(0.001, "records with an impossible date (2025-02-30, year 2099)")
    negative_amount_rate: float = _rate(0.001, "orders with a negative amount")
    unknown_sku_rate: float = _rate(0.001, "order lines and events naming a SKU not in the catalogue")


DEFAULT_END = dt.date(2026, 9, 30)


@dataclass(frozen=True)
class Params:
    """One generation: how many persons, which seed, when the two years of history end."""

    persons: int
    seed: int = 7
    end: dt.date = DEFAULT_END
    years: int = 2
    stores: int | None = None  # default: one store per 5 000 persons, between 5 and 300
    skus: int = 2000
    batch: str | None = None  # default: the end date, yyyymmdd
    mix: Mix = field(default_factory=Mix)
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self) -> None:
        if self.persons < 1:
            raise ConfigError(f"--persons must be at least 1, not {self.persons}")
        if self.persons >= 10**9:
            raise ConfigError(f"--persons must be below 1 000 000 000, not {self.persons}")
        for group in (self.mix, self.noise):
            for f in dataclasses.fields(group):
                value = getattr(group, f.name)
                if f.name != "events_per_app_user" and not 0.0 <= value <= 1.0:
                    raise ConfigError(f"--{f.name.replace('_', '-')} must be between 0 and 1, not {value}")
        if self.noise.family_phone_rate > 0.5:
            raise ConfigError(f"--family-phone-rate must be at most 0.5, not {self.noise.family_phone_rate}")
        if self.mix.events_per_app_user < 0:
            raise ConfigError(f"--events-per-app-user must not be negative, not {self.mix.events_per_app_user}")
        if self.noise.store_phone_rate + self.noise.typed_mobile_rate > 1:
            raise ConfigError("--store-phone-rate plus --typed-mobile-rate must be at most 1")

    @property
    def store_count(self) -> int:
        return self.stores or max(5, min(300, self.persons // 5000))

    @property
    def batch_id(self) -> str:
        return self.batch or f"{self.end:%Y%m%d}"

    @property
    def start(self) -> dt.date:
        return self.end - dt.timedelta(days=365 * self.years)


def knobs() -> list[tuple[str, str, float, str]]:
    """(group, option name, default, help) of every rate: for `--help` and the README."""
    out = []
    for group in (Mix, Noise):
        for f in dataclasses.fields(group):
            out.append((group.__name__.lower(), f.name, f.default, f.metadata["help"]))
    return out
