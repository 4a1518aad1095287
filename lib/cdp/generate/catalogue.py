"""The product catalogue and how people pick products from it.

The catalogue is small (thousands of SKUs), so it is built on the driver from a seeded
`random.Random` and handed to Spark. Picking is a broadcast join: each line says which shelf it
picks from (everything, one category, one brand in a category, one baby stage) and a position on
that shelf.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdp.columns import constant_map
from cdp.generate import vocab

PRODUCT_COLUMNS = ["sku", "name", "category_l1", "category_l2", "brand", "price", "baby_stage", "launched"]


@dataclass
class Catalogue:
    products: list[tuple]  # rows in PRODUCT_COLUMNS order
    shelves: dict[str, int]  # shelf key -> number of products on it
    placements: list[tuple[str, int, str]]  # (shelf key, position, sku)
    _frames: dict[str, DataFrame] = field(default_factory=dict, repr=False)

    def products_df(self, spark: SparkSession) -> DataFrame:
        """The catalogue as a DataFrame, sent to Spark once and kept."""
        if "products" not in self._frames:
            schema = (
                "sku string, name string, category_l1 string, category_l2 string, brand string, "
                "price decimal(10,2), baby_stage string, launched date"
            )
            self._frames["products"] = spark.createDataFrame(self.products, schema).localCheckpoint()
        return self._frames["products"]

    def _on_shelf(self, spark: SparkSession) -> DataFrame:
        if "on_shelf" not in self._frames:
            placed = spark.createDataFrame(self.placements, "_shelf string, _pos int, sku string")
            info = self.products_df(spark).select("sku", "price", "category_l2")
            self._frames["on_shelf"] = placed.join(info, on="sku", how="inner").localCheckpoint()
        return self._frames["on_shelf"]

    def shelf_size(self, key: Column) -> Column:
        """Number of products on the shelf named by `key` (null for an empty or unknown shelf)."""
        return F.try_element_at(constant_map(self.shelves), key)

    def pick(self, spark: SparkSession, lines: DataFrame, *, shelf: str, u: str) -> DataFrame:
        """Add `sku`, `price`, `category_l2` to `lines`, taking the product at `u` on shelf `shelf`.

        `shelf` and `u` are column names of `lines`; an empty or unknown shelf falls back to `all`.
        """
        size = self.shelf_size(F.col(shelf))
        lines = lines.withColumn("_shelf", F.when(size.isNull(), F.lit("all")).otherwise(F.col(shelf)))
        lines = lines.withColumn("_pos", F.floor(F.col(u) * self.shelf_size(F.col("_shelf"))).cast("int"))
        on_shelf = F.broadcast(self._on_shelf(spark))
        return lines.join(on_shelf, on=["_shelf", "_pos"], how="left").drop("_shelf", "_pos")


def build(skus: int, seed: int, *, end: dt.date) -> Catalogue:
    """`skus` products spread over the categories by weight, each category over its brands."""
    rng = random.Random(seed)
    l2s = [(l1, l2, brands) for l1, sub in vocab.CATEGORIES.items() for l2, brands in sub.items()]
    weight = {l2: vocab.CATEGORY_WEIGHTS[l1] / len(vocab.CATEGORIES[l1]) for l1, l2, _ in l2s}
    total = sum(weight.values())
    products: list[tuple] = []
    for l1, l2, brands in l2s:
        count = max(len(brands), round(skus * weight[l2] / total))
        stages = vocab.STAGED_CATEGORIES.get(l2)
        lo, hi = vocab.PRICE_RANGES[l2]
        for i in range(count):
            brand = brands[i % len(brands)]
            stage = stages[(i // len(brands)) % len(stages)] if stages else None
            sku = f"{len(products) + 100001:06d}"
            price = rng.randint(lo, hi) - 0.1 * rng.choice([0, 0, 1, 2])  # 199.00, 198.90, 198.80
            launched = end - dt.timedelta(days=rng.randint(30, 1500))
            name = f"{brand}{l2}{'·' + stage if stage else ''} {i // len(brands) + 1}号"
            products.append((sku, name, l1, l2, brand, _money(price), stage, launched))

    placements: list[tuple[str, int, str]] = []
    shelves: dict[str, int] = {}

    def place(key: str, sku: str) -> None:
        placements.append((key, shelves.get(key, 0), sku))
        shelves[key] = shelves.get(key, 0) + 1

    for sku, _name, _l1, l2, brand, _price, stage, _launched in products:
        place("all", sku)
        place(f"c:{l2}", sku)
        place(f"b:{l2}:{brand}", sku)
        if stage:
            place(f"s:{stage}", sku)
    return Catalogue(products=products, shelves=shelves, placements=placements)


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")
