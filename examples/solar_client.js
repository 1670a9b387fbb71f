#!/usr/bin/env node
// A small client for a nutbridge (or Solar Protocol v1) node, with Node.js 18+ and nothing else.
//
//   node examples/solar_client.js http://127.0.0.1:8080
//
// In a browser page served by the node, the same fetch() calls work with a relative URL.

const V1 = "/api/v1/chargecontroller.php";

async function get(base, path) {
  const response = await fetch(base.replace(/\/$/, "") + path);
  return { status: response.status, body: await response.text() };
}

async function main(base) {
  if (!base) {
    console.error("usage: node examples/solar_client.js http://HOST:PORT");
    return 2;
  }
  const newest = await get(base, `${V1}?line=0`); // v1: the newest row as a JSON object
  const row = newest.body ? JSON.parse(newest.body) : {};
  console.log(`newest row ${row["datetime"]}: PV ${row["PV voltage"]} V, battery ${row["battery percentage"]}`);
  const series = await get(base, `${V1}?value=PV-voltage&duration=1`); // timestamp → value, header first
  const values = Object.entries(JSON.parse(series.body || "{}")).filter(([k]) => k !== "datetime");
  console.log(`today: ${values.length} PV voltage readings`);
  const health = await get(base, "/health");
  console.log(`health: ${health.status === 200 ? "ok" : JSON.parse(health.body).reason}`);
  return 0;
}

main(process.argv[2]).then((code) => process.exit(code));
