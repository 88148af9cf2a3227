"use strict";
// Joint angles over time as canvas line charts, from a job's angles.csv.

const ANGLE_GROUPS = [
  ["elbows", ["left_elbow", "right_elbow"]], ["shoulders", ["left_shoulder", "right_shoulder"]],
  ["hips", ["left_hip", "right_hip"]], ["knees", ["left_knee", "right_knee"]],
  ["ankles", ["left_ankle", "right_ankle"]], ["trunk", ["trunk_inclination"]],
];

// angles.csv → {column: [numbers, NaN for empty cells]}, the first track only.
function parseAngles(text) {
  const lines = text.trim().split("\n");
  const header = lines[0].split(",");
  const rows = lines.slice(1).map((l) => l.split(","));
  const track = header.indexOf("track_id");
  const first = rows.length ? rows[0][track] : null;
  const mine = rows.filter((r) => r[track] === first);
  const columns = {};
  header.forEach((name, i) => { columns[name] = mine.map((r) => (r[i] === "" ? NaN : Number(r[i]))); });
  return columns;
}

// One chart: time (s) across, degrees up; each side in its colour, 2-D solid, 3-D dashed.
function drawAngleChart(canvas, title, names, columns) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 40, right: 10, top: 22, bottom: 24 };
  ctx.clearRect(0, 0, width, height);
  const t = columns.timestamp_ms.map((v) => v / 1000);
  const t0 = Math.min(...t), t1 = Math.max(...t, t0 + 1e-3);
  const x = (v) => pad.left + ((v - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (deg) => pad.top + (1 - deg / 180) * (height - pad.top - pad.bottom);
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#ccc";
  ctx.fillText(title, pad.left, 14);
  ctx.strokeStyle = "#2a2f38";
  ctx.fillStyle = "#889";
  for (const deg of [0, 45, 90, 135, 180]) {
    ctx.beginPath(); ctx.moveTo(pad.left, y(deg)); ctx.lineTo(width - pad.right, y(deg)); ctx.stroke();
    ctx.fillText(String(deg), 8, y(deg) + 4);
  }
  ctx.fillText(`${t0.toFixed(1)} s`, pad.left, height - 6);
  ctx.fillText(`${t1.toFixed(1)} s`, width - pad.right - 40, height - 6);
  names.forEach((name) => {
    ctx.strokeStyle = SIDE_COLOURS[sideOf(name)];
    for (const [kind, dash] of [["2d", []], ["3d", [5, 4]]]) {
      const values = columns[`${name}_${kind}`] || [];
      ctx.setLineDash(dash);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let drawing = false;
      values.forEach((v, i) => {
        if (Number.isNaN(v)) { drawing = false; return; }
        if (!drawing) ctx.moveTo(x(t[i]), y(v)); else ctx.lineTo(x(t[i]), y(v));
        if (values.length === 1) ctx.arc(x(t[i]), y(v), 2, 0, 2 * Math.PI);
        drawing = true;
      });
      ctx.stroke();
    }
  });
  ctx.setLineDash([]);
}

function drawAngleCharts(container, csvText) {
  const columns = parseAngles(csvText);
  container.replaceChildren();
  for (const [title, names] of ANGLE_GROUPS) {
    const canvas = document.createElement("canvas");
    canvas.width = 360;
    canvas.height = 180;
    canvas.dataset.group = title;
    container.appendChild(canvas);
    drawAngleChart(canvas, title, names, columns);
  }
}
