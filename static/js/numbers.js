/* Numbers as the server writes them: the mirror of app/numbers.py (read its docstring).
 *
 * Three significant figures, or as many as tell a figure from its nearest different
 * neighbour in its column (`among`), at most six. Rounding half away from zero on the
 * float's exact value (toFixed), a value's decade from its shortest form (toExponential):
 * what app/numbers.py does with Decimal, so a cost reads the same in a tooltip as in the
 * table. tests/e2e/test_dashboard_price_e2e.py checks the two agree.
 *
 * Also the price control's rule (app/web/dashboard.py: PRICE_PATTERN, price_error): the
 * same pattern, bounds and messages as the server's.
 */
(function () {
  "use strict";

  const SIG = 3;
  const MAX_SIG = 6;
  const GAP_FLOOR = 1e-5; // 10 ** (1 - MAX_SIG), written out as in app/numbers.py
  const MAX_DECIMALS = 20;

  function exponent(x) {
    return Number(Math.abs(x).toExponential().split("e")[1]);
  }

  function rounded(x, decimals) {
    const text = x.toFixed(decimals);
    return Number(text) === 0 ? text.replace(/^-/, "") : text; // no "-0"
  }

  function group(text) {
    const [whole, frac] = text.split(".");
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return frac === undefined ? grouped : grouped + "." + frac;
  }

  function fixed(x, decimals) {
    const d = Math.max(0, Math.min(decimals, MAX_DECIMALS));
    return group(rounded(x, d));
  }

  function sigDecimals(x, digits) {
    if (x === 0 || !Number.isFinite(x)) return 0;
    let d = Math.min(Math.max(0, (digits || SIG) - 1 - exponent(x)), MAX_DECIMALS);
    // 0.09996 at three figures rounds up to 0.100: one decimal fewer keeps three figures.
    if (d > 0 && exponent(Number(rounded(x, d))) > exponent(x)) d -= 1;
    return d;
  }

  function decimalsAmong(x, among) {
    let d = sigDecimals(x, SIG);
    if (x === 0 || !Number.isFinite(x)) return d;
    const most = sigDecimals(x, MAX_SIG);
    const gaps = (among || [])
      .filter((o) => o !== null && o !== undefined && Number.isFinite(o) && o !== x)
      .map((o) => Math.abs(x - o))
      .filter((gap) => gap >= Math.abs(x) * GAP_FLOOR);
    if (gaps.length) d = Math.max(d, Math.min(-exponent(Math.min(...gaps)), most));
    return d;
  }

  function fmtUsd(x, among) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "—";
    if (x === 0) return "$0";
    const text = fixed(x, decimalsAmong(x, among));
    return text.startsWith("-") ? "-$" + text.slice(1) : "$" + text;
  }

  function fmtSig(x, among) {
    if (x === null || x === undefined || !Number.isFinite(x)) return "—";
    return fixed(x, decimalsAmong(x, among));
  }

  // The price control ($ per hour): app/web/dashboard.py's price_error, word for word.
  const PRICE_PATTERN = /^\s*\$?\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

  function priceError(raw, maxUsd) {
    const range = "from $0 to $" + fixed(maxUsd, 0) + " per hour";
    if (raw.trim() === "") return "Enter a price " + range + ".";
    if (!PRICE_PATTERN.test(raw)) return "Enter the price as a number, like 2.50, " + range + ".";
    const value = Number(raw.replace("$", "").trim());
    if (!Number.isFinite(value) || value < 0 || value > maxUsd) {
      return "Enter a price " + range + ".";
    }
    return "";
  }

  window.FluxNumbers = { fmtUsd, fmtSig, fixed, priceError };
})();
