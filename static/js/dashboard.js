/* Dashboard charts, drawn with the vendored Chart.js 4 (global `Chart`).
 *
 * The numbers come from the server as JSON in <script type="application/json"
 * id="dashboard-data">. The price control swaps the figures block (table + that JSON) with
 * htmx; after the swap the JSON is read again and the charts are updated in place.
 *
 * Latency error bars: a floating bar dataset ([p10, p90]) drawn thin and dark over the
 * median bar (`grouped: false` puts both at the same x), so tooltips work without a plugin.
 * Cost vs quality: a scatter of $/1k images against the arena's Bradley–Terry rating (or, when
 * `quality_kind` names a metric, its per-variant mean), with its 95% interval drawn by a small
 * plugin (errorBars).
 */
(function () {
  "use strict";

  const charts = {};

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function readData() {
    const el = document.getElementById("dashboard-data");
    return el ? JSON.parse(el.textContent) : null;
  }

  // Same formats as the table: app/web/templating.py, and static/js/numbers.js for costs.
  function fmtSeconds(s) {
    if (s === null || s === undefined) return "—";
    if (s < 1) return (s * 1000).toFixed(1) + " ms";
    return s < 120 ? s.toFixed(2) + " s" : (s / 60).toFixed(1) + " min";
  }
  const fmtUsd = window.FluxNumbers.fmtUsd;
  // Axis ticks: three significant figures, like any lone cost ($0.007, $1.50).
  function tickUsd(x) {
    return fmtUsd(x);
  }

  // A 95% interval in words, as on the leaderboard: a null end is unbounded.
  function fmtInterval(low, high, fmt) {
    if (low === null && high === null) return "unbounded";
    if (high === null) return "≥ " + fmt(low);
    if (low === null) return "≤ " + fmt(high);
    return "[" + fmt(low) + ", " + fmt(high) + "]";
  }
  /* Vertical error bars from each point's `low` to `high` (an unbounded end runs to the edge
   * of the plot, without a cap) and the variant's name beside the point. Chart.js has no
   * error bars of its own; this draws them after the points, reading the current data. */
  function errorBars(color) {
    return {
      id: "errorBars",
      afterDatasetsDraw(chart) {
        const { ctx, chartArea, scales } = chart;
        const points = chart.data.datasets[0].data;
        ctx.save();
        ctx.beginPath();
        ctx.rect(chartArea.left, chartArea.top, chartArea.width, chartArea.height);
        ctx.clip();
        ctx.strokeStyle = color;
        ctx.lineWidth = 1.5;
        chart.getDatasetMeta(0).data.forEach((element, i) => {
          const p = points[i];
          const top = p.high === null ? chartArea.top : scales.y.getPixelForValue(p.high);
          const bottom = p.low === null ? chartArea.bottom : scales.y.getPixelForValue(p.low);
          ctx.beginPath();
          ctx.moveTo(element.x, top);
          ctx.lineTo(element.x, bottom);
          for (const [end, y] of [[p.high, top], [p.low, bottom]]) {
            if (end === null) continue;
            ctx.moveTo(element.x - 4, y);
            ctx.lineTo(element.x + 4, y);
          }
          ctx.stroke();
        });
        ctx.restore();
        ctx.save();
        ctx.fillStyle = color;
        ctx.font = "12px " + Chart.defaults.font.family;
        chart.getDatasetMeta(0).data.forEach((element, i) => {
          const name = points[i].name;
          // Beside the point, or on its left where the name would leave the chart.
          const right = element.x + 8 + ctx.measureText(name).width <= chart.width;
          ctx.textAlign = right ? "left" : "right";
          ctx.fillText(name, element.x + (right ? 8 : -8), element.y - 6);
        });
        ctx.restore();
      },
    };
  }

  function labels(data) {
    return data.variants.map((v) => (v.status === "failed" ? v.name + " (failed)" : v.name));
  }
  function column(data, key) {
    return data.variants.map((v) => (v[key] === null || v[key] === undefined ? null : v[key]));
  }

  function barOptions(yTitle, tick, tooltipLabel) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 250 },
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { label: tooltipLabel } },
      },
      scales: {
        x: { ticks: { autoSkip: false, maxRotation: 60 } },
        y: { beginAtZero: true, title: { display: true, text: yTitle }, ticks: { callback: tick } },
      },
    };
  }

  function configs(data) {
    const accent = cssVar("--accent", "#5b4bff");
    const fg = cssVar("--fg", "#1c1d21");
    const muted = cssVar("--muted", "#6b6f7a");
    const names = labels(data);
    const price = data.run.price_label;
    const out = {};

    out.latency = {
      type: "bar",
      data: {
        labels: names,
        datasets: [
          {
            // First dataset is drawn on top.
            label: "p10–p90",
            data: data.variants.map((v) =>
              v.latency_p10_s === null ? null : [v.latency_p10_s, v.latency_p90_s]
            ),
            backgroundColor: fg,
            grouped: false,
            barPercentage: 0.06,
            minBarLength: 2,
          },
          {
            label: "median",
            data: column(data, "latency_median_s"),
            backgroundColor: accent,
            grouped: false,
            barPercentage: 0.7,
          },
        ],
      },
      options: barOptions("seconds per image", (v) => fmtSeconds(v), (ctx) =>
        Array.isArray(ctx.raw)
          ? "p10–p90: " + fmtSeconds(ctx.raw[0]) + " – " + fmtSeconds(ctx.raw[1])
          : "median: " + fmtSeconds(ctx.raw)
      ),
    };

    const references = new Set(data.variants.map((v) => v.reference).filter(Boolean));
    out.speedup = {
      type: "bar",
      data: {
        // A reference has no speed-up of its own: say why its slot is empty.
        labels: names.map((n, i) => (references.has(data.variants[i].name) ? n + " (ref)" : n)),
        datasets: [
          {
            type: "line",
            label: "reference (1×)",
            data: names.map(() => 1),
            borderColor: muted,
            borderDash: [4, 4],
            borderWidth: 1,
            pointRadius: 0,
          },
          {
            label: "speed-up",
            data: column(data, "speedup"),
            backgroundColor: accent,
          },
        ],
      },
      options: barOptions("× vs reference", (v) => v + "×", (ctx) =>
        "speed-up: " + ctx.raw.toFixed(2) + "×"
      ),
    };
    out.speedup.options.plugins.tooltip.filter = (item) => item.dataset.type !== "line";

    out.cost = {
      type: "bar",
      data: {
        labels: names,
        datasets: [
          {
            label: "$ / 1k images",
            data: column(data, "usd_per_1k_images"),
            backgroundColor: accent,
          },
        ],
      },
      // The tooltip reads as the table: the same decimals against the same column.
      options: barOptions("$ per 1k images at " + price, tickUsd, (ctx) =>
        "$ per 1k images: " + fmtUsd(ctx.raw, column(data, "usd_per_1k_images"))
      ),
    };

    out.memory = {
      type: "bar",
      data: {
        labels: names,
        datasets: [
          {
            label: "peak memory",
            data: column(data, "peak_mem_gb"),
            backgroundColor: accent,
          },
        ],
      },
      options: barOptions("GB", (v) => v + " GB", (ctx) => {
        const kind = data.variants[ctx.dataIndex].peak_mem_kind;
        return ctx.raw.toFixed(2) + " GB" + (kind ? " (" + kind.replaceAll("_", " ") + ")" : "");
      }),
    };

    // Cost against the arena's Bradley–Terry rating or a metric's mean; each point carries its
    // 95% interval.
    const isRating = (data.quality_kind || "rating") === "rating";
    // A metric's interval comes formatted (app.numbers.fmt_estimate: decimals from its
    // width, clipped to the metric's range); ratings are whole Elo points.
    const rated = data.variants.filter((v) => v.quality !== null && v.usd_per_1k_images !== null);
    if (rated.length) {
      const points = rated.map((v) => ({
        x: v.usd_per_1k_images,
        y: isRating ? v.quality.rating : v.quality.value,
        low: v.quality.ci_low,
        high: v.quality.ci_high,
        name: v.name,
        text: isRating ? null : v.quality.text,
      }));
      const costs = column(data, "usd_per_1k_images"); // the table's column, the same decimals
      const ends = points.flatMap((p) => [p.y, p.low ?? p.y, p.high ?? p.y]);
      const lo = Math.min(...ends);
      const hi = Math.max(...ends);
      // Ratings: at least 10 Elo points of room; metrics: 8% of their spread (or of the value).
      const pad = isRating
        ? Math.max(10, (hi - lo) * 0.08)
        : (hi - lo) * 0.08 || Math.abs(hi) * 0.05 || 0.01;
      out.quality = {
        type: "scatter",
        data: {
          datasets: [
            {
              label: "variants",
              data: points,
              backgroundColor: accent,
              pointRadius: 5,
              pointHoverRadius: 7,
            },
          ],
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: { duration: 250 },
          layout: { padding: { right: 16, top: 8 } },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                label: (ctx) =>
                  ctx.raw.name + ": " + fmtUsd(ctx.raw.x, costs) + " per 1k images, " +
                  (isRating
                    ? "rating " + Math.round(ctx.raw.y) + " " +
                      fmtInterval(ctx.raw.low, ctx.raw.high, Math.round)
                    : "mean " + ctx.raw.text),
              },
            },
          },
          scales: {
            x: {
              grace: "8%",
              title: { display: true, text: "$ per 1k images at " + price },
              ticks: { callback: tickUsd },
            },
            y: {
              suggestedMin: lo - pad,
              suggestedMax: hi + pad,
              title: { display: true, text: data.quality_label || "quality" },
            },
          },
        },
        plugins: [errorBars(fg)],
      };
    }
    return out;
  }

  function draw() {
    const data = readData();
    if (!data || typeof Chart === "undefined") return;
    const wanted = configs(data);
    for (const [name, config] of Object.entries(wanted)) {
      const canvas = document.getElementById("chart-" + name);
      if (!canvas) continue;
      const chart = charts[name];
      if (chart) {
        chart.data = config.data;
        chart.options = config.options;
        chart.update();
      } else {
        charts[name] = new Chart(canvas, config);
      }
    }
  }

  if (typeof Chart !== "undefined") {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = cssVar("--muted", "#6b6f7a");
  }
  draw();
  // The price control swaps #dashboard-figures: its JSON now holds the new cost figures.
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "dashboard-figures") draw();
  });
  // Back/forward: htmx puts back a snapshot of the page whose canvases are new and blank.
  document.body.addEventListener("htmx:historyRestore", () => {
    for (const name of Object.keys(charts)) {
      charts[name].destroy();
      delete charts[name];
    }
    draw();
  });
})();

/* Scaling charts (sizes and batch sizes), from <script type="application/json"
 * id="scaling-data">: latency per image against megapixels and peak memory against
 * megapixels (linear x axes, a line per variant at batch 1), images/s against batch size at
 * the main size. The memory chart draws the configured GPU sizes as dashed horizontal lines
 * (CUDA peaks only: the server leaves them out for a CPU's peak RSS) and, as crosses, the
 * memory reached where a shape ran out of it. Each chart's numbers are also in the table
 * under it, for readers without JavaScript. */
(function () {
  "use strict";

  const charts = {};
  const PALETTE = ["#5b4bff", "#e8590c", "#1f9d55", "#d6336c", "#1c7ed6", "#7048e8", "#c27c0e", "#0ca678"];

  function readData() {
    const el = document.getElementById("scaling-data");
    return el ? JSON.parse(el.textContent) : null;
  }
  function fmtSeconds(s) {
    if (s < 1) return (s * 1000).toFixed(1) + " ms";
    return s < 120 ? s.toFixed(2) + " s" : (s / 60).toFixed(1) + " min";
  }
  function fmtNumber(x) {
    return String(Number(x.toPrecision(3)));
  }

  function lineOptions(xTitle, yTitle, xType, tick, label) {
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: { duration: 250 },
      plugins: {
        legend: { display: true, position: "bottom", labels: { boxWidth: 12 } },
        tooltip: { callbacks: { label: label } },
      },
      scales: {
        x: { type: xType, title: { display: true, text: xTitle } },
        y: { beginAtZero: true, title: { display: true, text: yTitle }, ticks: { callback: tick } },
      },
    };
  }

  function configs(data) {
    const out = {};
    const colour = (i) => PALETTE[i % PALETTE.length];

    out.latency = {
      type: "line",
      data: {
        datasets: data.variants.map((v, i) => ({
          label: v.name,
          data: v.latency.map((p) => ({ x: p.mp, y: p.s, size: p.size })),
          borderColor: colour(i),
          backgroundColor: colour(i),
        })),
      },
      options: lineOptions("megapixels", "seconds per image", "linear", fmtSeconds, (ctx) =>
        ctx.dataset.label + " at " + ctx.raw.size + ": " + fmtSeconds(ctx.raw.y) + " per image"
      ),
    };

    out.throughput = {
      type: "line",
      data: {
        datasets: data.variants.map((v, i) => ({
          label: v.name,
          data: v.throughput.map((p) => ({ x: p.batch, y: p.images_per_s })),
          borderColor: colour(i),
          backgroundColor: colour(i),
        })),
      },
      options: lineOptions(
        "batch size at " + data.main_size,
        "images per second",
        "linear",
        fmtNumber,
        (ctx) => ctx.dataset.label + ", batch " + ctx.raw.x + ": " + fmtNumber(ctx.raw.y) + " images/s"
      ),
    };
    out.throughput.options.scales.x.ticks = { stepSize: 1, precision: 0 };

    const mps = data.sizes.map((s) => s.mp);
    const [lo, hi] = [Math.min(...mps), Math.max(...mps)];
    const memory = data.variants.map((v, i) => ({
      label: v.name,
      data: v.memory.filter((p) => p.fits).map((p) => ({ x: p.mp, y: p.gb, size: p.size })),
      borderColor: colour(i),
      backgroundColor: colour(i),
    }));
    data.variants.forEach((v, i) => {
      const misfits = v.memory.filter((p) => !p.fits);
      if (misfits.length) {
        memory.push({
          label: v.name + " (ran out)",
          data: misfits.map((p) => ({ x: p.mp, y: p.gb, size: p.size, misfit: true })),
          showLine: false,
          pointStyle: "crossRot",
          pointRadius: 7,
          borderColor: colour(i),
          backgroundColor: colour(i),
        });
      }
    });
    for (const gb of data.gpu_memory_gb) {
      memory.push({
        label: gb + " GB GPU",
        data: [{ x: lo, y: gb }, { x: hi, y: gb }],
        borderColor: "#6b6f7a",
        borderDash: [5, 4],
        borderWidth: 1,
        pointRadius: 0,
        gpu: true,
      });
    }
    out.memory = {
      type: "line",
      data: { datasets: memory },
      options: lineOptions("megapixels (batch 1)", "GB", "linear", (v) => v + " GB", (ctx) =>
        ctx.dataset.gpu
          ? ctx.dataset.label
          : ctx.dataset.label + " at " + ctx.raw.size + ": " + ctx.raw.y.toFixed(2) + " GB" +
            (ctx.raw.misfit ? " reached, out of memory" : "")
      ),
    };
    return out;
  }

  function draw() {
    const data = readData();
    if (!data || typeof Chart === "undefined") return;
    for (const [name, config] of Object.entries(configs(data))) {
      const canvas = document.getElementById("chart-scaling-" + name);
      if (!canvas) continue;
      if (charts[name]) charts[name].destroy();
      charts[name] = new Chart(canvas, config);
    }
  }

  draw();
  // Back/forward: htmx puts back a snapshot of the page whose canvases are new and blank.
  document.body.addEventListener("htmx:historyRestore", () => {
    for (const name of Object.keys(charts)) {
      charts[name].destroy();
      delete charts[name];
    }
    draw();
  });
})();

/* The price control: says why a price is refused, and says in one sentence when the costs
 * follow a new one (the table itself is not a live region: it would be read whole).
 *
 * The rule is the server's (static/js/numbers.js priceError); while the field breaks it, its
 * custom validity is set, so htmx sends nothing (it validates a form before a request), the
 * field is aria-invalid and described by the reason, and the figures stay at the price in
 * effect, which the note above the table names. */
(function () {
  "use strict";

  const form = document.querySelector("form.price-form");
  const input = document.getElementById("usd-per-hour");
  const error = document.getElementById("usd-per-hour-error");
  const status = document.getElementById("price-status");
  if (!form || !input || !error || !status || !window.FluxNumbers) return;
  const max = Number(form.dataset.maxUsdPerHour);
  let timer = null;

  function say(text) {
    if (status.textContent !== text) status.textContent = text;
  }
  function check() {
    const message = window.FluxNumbers.priceError(input.value, max);
    input.setCustomValidity(message);
    return message;
  }
  function show(message) {
    clearTimeout(timer);
    error.textContent = message;
    error.hidden = !message;
    if (message) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", error.id);
      say(message);
    } else {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
  }

  check();
  input.addEventListener("input", () => {
    const message = check();
    clearTimeout(timer);
    // A fixed price clears the reason at once; a wrong one is named once typing pauses,
    // when the request would have gone, not at every key.
    if (message) timer = setTimeout(() => show(message), 300);
    else show("");
  });
  input.addEventListener("change", () => show(check()));
  form.addEventListener("htmx:validation:halted", () => show(check()));
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (!event.detail.target || event.detail.target.id !== "dashboard-figures") return;
    const price = event.detail.target.querySelector(".price-in-effect");
    if (price) say("Costs updated for " + price.textContent.trim());
  });
})();
