"""The instance types and regions shoal offers: the seed's two tables, as data."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

SECONDS_PER_HOUR = 3600
# The seed's monthly prices are per-second prices over a 730-hour month, rounded to cents.
HOURS_PER_MONTH = 730

ECO_REGIONS = frozenset({"was", "fra", "sin"})
FREE_REGIONS = frozenset({"was", "fra"})


@dataclass(frozen=True)
class InstanceType:
    id: str
    vcpu_shares: float
    memory_mb: int
    disk_mb: int
    price_per_second: Decimal
    price_monthly: Decimal
    family: str  # "standard" | "eco"

    @property
    def vcpu(self) -> int:
        # The wire field is an integer; fractional CPUs are in `vcpu_shares`.
        return max(1, math.ceil(self.vcpu_shares))

    @property
    def price_hourly(self) -> Decimal:
        return self.price_per_second * SECONDS_PER_HOUR

    @property
    def is_free(self) -> bool:
        return self.id == "free"

    def available_in(self, region: str) -> bool:
        if self.is_free:
            return region in FREE_REGIONS
        if self.family == "eco":
            return region in ECO_REGIONS
        return True


def _t(
    id_: str, vcpu: float, mem_mb: int, disk_gb: float, pps: str, month: str, family: str
) -> InstanceType:
    return InstanceType(
        id_, vcpu, mem_mb, int(disk_gb * 1024), Decimal(pps), Decimal(month), family
    )


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.id: t
    for t in (
        _t("nano", 0.25, 256, 2.5, "0.000001", "2.68", "standard"),
        _t("micro", 0.5, 512, 5, "0.000002", "5.36", "standard"),
        _t("small", 1, 1024, 10, "0.000004", "10.71", "standard"),
        _t("medium", 2, 2048, 20, "0.000008", "21.43", "standard"),
        _t("large", 4, 4096, 40, "0.000016", "42.85", "standard"),
        _t("xlarge", 8, 8192, 80, "0.000032", "85.71", "standard"),
        _t("2xlarge", 16, 16384, 160, "0.000064", "171.42", "standard"),
        _t("3xlarge", 24, 32768, 240, "0.000128", "342.84", "standard"),
        _t("4xlarge", 32, 65536, 320, "0.000256", "685.67", "standard"),
        _t("5xlarge", 40, 131072, 400, "0.000512", "1371.34", "standard"),
        _t("free", 0.1, 512, 2, "0", "0.00", "eco"),
        _t("eco-nano", 0.1, 256, 2, "0.0000006", "1.61", "eco"),
        _t("eco-micro", 0.25, 512, 4, "0.000001", "2.68", "eco"),
        _t("eco-small", 0.5, 1024, 8, "0.000002", "5.36", "eco"),
        _t("eco-medium", 1, 2048, 16, "0.000004", "10.71", "eco"),
        _t("eco-large", 2, 4096, 20, "0.000008", "21.43", "eco"),
        _t("eco-xlarge", 4, 8192, 20, "0.000016", "42.85", "eco"),
        _t("eco-2xlarge", 8, 16384, 20, "0.000032", "85.71", "eco"),
    )
}


@dataclass(frozen=True)
class Region:
    id: str
    name: str
    latitude: float
    longitude: float


KNOWN_REGIONS: dict[str, Region] = {
    r.id: r
    for r in (
        Region("fra", "Frankfurt", 50.11, 8.68),
        Region("was", "Washington, D.C.", 38.91, -77.04),
        Region("sin", "Singapore", 1.35, 103.82),
        Region("par", "Paris", 48.86, 2.35),
        Region("sfo", "San Francisco", 37.77, -122.42),
        Region("tyo", "Tokyo", 35.68, 139.69),
    )
}

DEFAULT_REGIONS: tuple[str, ...] = ("fra", "was", "sin")


def distance_km(a: str, b: str) -> float:
    """The great-circle distance between two known regions (inf if either is unknown): what
    "closest" means when a request is routed, the stand-in for measured round-trip times."""
    if a not in KNOWN_REGIONS or b not in KNOWN_REGIONS:
        return math.inf
    one, two = KNOWN_REGIONS[a], KNOWN_REGIONS[b]
    lat1, lat2 = math.radians(one.latitude), math.radians(two.latitude)
    dlat, dlon = lat2 - lat1, math.radians(two.longitude - one.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def nearest_first(origin: str, regions: Iterable[str]) -> list[str]:
    """`regions`, the closest to `origin` first (ties by name)."""
    return sorted(set(regions), key=lambda r: (distance_km(origin, r), r))


DEFAULT_INSTANCE_TYPE = "nano"


def format_size(mb: int) -> str:
    """256 -> '256MB', 1024 -> '1GB', 2560 -> '2.5GB' (the seed's notation)."""
    if mb < 1024:
        return f"{mb}MB"
    gb = mb / 1024
    return f"{gb:g}GB"
