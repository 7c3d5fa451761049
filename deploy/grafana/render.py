"""Render the DORA overview as a PNG from the same queries the Grafana dashboard runs, so a reader
of the docs sees what Grafana will show.

    python deploy/grafana/render.py --prometheus http://127.0.0.1:9090 --output docs/images/dora-overview.png

Needs matplotlib (`pip install matplotlib`); the queries come from generate.py's dashboards.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from generate import dashboards  # type: ignore[import-not-found]

VARIABLES = {"$window": "30d", "$service": ".*", "$environment": ".*"}


def instant(prometheus: str, expr: str) -> list[dict[str, Any]]:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a local Prometheus
        result: list[dict[str, Any]] = json.load(answer)["data"]["result"]
    return result


def render(prometheus: str, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {p["title"]: p for p in dashboards()["dora-overview"]["panels"]}
    figure = plt.figure(figsize=(14, 8.5), facecolor="#111217")
    grid = figure.add_gridspec(3, 4, height_ratios=[1, 2.2, 2.2], hspace=0.55, wspace=0.35)
    stats = [("Deployments per day", "{:.2f}", 1), ("Lead time (median of services)", "{:.1f} d",
                                                     86400),
             ("Change failure rate", "{:.0%}", 1), ("Recovery time (median of services)",
                                                     "{:.1f} h", 3600)]
    for column, (title, fmt, scale) in enumerate(stats):
        axis = figure.add_subplot(grid[0, column])
        result = instant(prometheus, panels[title]["targets"][0]["expr"])
        value = float(result[0]["value"][1]) / scale if result else float("nan")
        axis.set_facecolor("#181b1f")
        axis.text(0.5, 0.38, fmt.format(value), ha="center", va="center", fontsize=26,
                  color="#73bf69", weight="bold")
        axis.set_title(title, color="#d8d9da", fontsize=10, loc="left")
        axis.set_xticks([])
        axis.set_yticks([])
    tiers = instant(prometheus, panels["DORA tier per service"]["targets"][0]["expr"])
    axis = figure.add_subplot(grid[1, :2])
    names = [t["metric"]["service"] for t in tiers]
    values = [float(t["value"][1]) for t in tiers]
    colours = ["#f2495c", "#ff9830", "#fade2a", "#73bf69"]
    axis.barh(names, [v + 0.15 for v in values], color=[colours[int(v)] for v in values])
    axis.set_xlim(0, 3.4)
    axis.set_xticks([0, 1, 2, 3], ["low", "medium", "high", "elite"])
    axis.set_title("DORA tier per service (30 days)", color="#d8d9da", fontsize=10, loc="left")
    monthly = instant(prometheus, panels["Production deployments per month"]["targets"][0]["expr"])
    axis2 = figure.add_subplot(grid[1, 2:])
    months = sorted(monthly, key=lambda r: r["metric"]["month"])
    axis2.bar([m["metric"]["month"] for m in months], [float(m["value"][1]) for m in months],
              color="#5794f2")
    axis2.set_title("Production deployments per month", color="#d8d9da", fontsize=10, loc="left")
    order = {e["metric"]["environment"]: int(e["metric"]["order"])
             for e in instant(prometheus, "devex_environment_info")}
    waits = sorted(instant(prometheus, dashboards()["lead-time"]["panels"][1]["targets"][0]["expr"]),
                   key=lambda w: -order.get(w["metric"]["from_environment"], 0))
    axis3 = figure.add_subplot(grid[2, :])
    stages = [f'{w["metric"]["from_environment"]} → {w["metric"]["to_environment"]}'
              for w in waits]
    hours = [float(w["value"][1]) / 3600 for w in waits]
    axis3.barh(stages, hours, color=["#f2495c" if h == max(hours) else "#8ab8ff" for h in hours])
    axis3.set_title("Median wait per stage, all services (hours): the bottleneck in red",
                    color="#d8d9da", fontsize=10, loc="left")
    for axis_ in (axis, axis2, axis3):
        axis_.set_facecolor("#181b1f")
        axis_.tick_params(colors="#d8d9da", labelsize=9)
        for spine in axis_.spines.values():
            spine.set_color("#2c3235")
    figure.suptitle("devex — DORA overview (the demo organisation)", color="#d8d9da",
                    fontsize=14, x=0.02, ha="left")
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100, facecolor=figure.get_facecolor())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--output", type=Path, default=Path("docs/images/dora-overview.png"))
    args = parser.parse_args()
    render(args.prometheus, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
