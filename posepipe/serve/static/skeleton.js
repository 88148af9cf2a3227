"use strict";
// Drawing landmarks: over a picture (2-D) and as a world skeleton to turn with the mouse (3-D).

// MediaPipe's POSE_CONNECTIONS, as in posepipe/topology.py (a test keeps the two equal).
const POSE_CONNECTIONS = [
  [0, 1], [1, 2], [2, 3], [3, 7], [0, 4], [4, 5], [5, 6], [6, 8], [9, 10],
  [11, 12], [11, 13], [13, 15], [15, 17], [15, 19], [15, 21], [17, 19],
  [12, 14], [14, 16], [16, 18], [16, 20], [16, 22], [18, 20],
  [11, 23], [12, 24], [23, 24], [23, 25], [24, 26], [25, 27], [26, 28],
  [27, 29], [28, 30], [29, 31], [30, 32], [27, 31], [28, 32],
];
// The overlay's colours (posepipe/drawing.py): left orange, right blue, the midline white.
const SIDE_COLOURS = { left: "rgb(255,138,0)", right: "rgb(0,160,255)", middle: "rgb(235,235,235)" };
const VISIBLE = 0.5;

function sideOf(name) {
  if (name.startsWith("left") || name === "mouth_left") return "left";
  if (name.startsWith("right") || name === "mouth_right") return "right";
  return "middle";
}

function lineColour(points, a, b) {
  const sa = sideOf(points[a].name), sb = sideOf(points[b].name);
  return SIDE_COLOURS[sa === sb ? sa : "middle"];
}

// Landmarks of every pose (image pixels of a width × height frame) over a canvas of any size.
function drawLandmarks2d(canvas, poses, width, height) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sx = canvas.width / width, sy = canvas.height / height;
  const radius = Math.max(2, Math.round(canvas.width / 200));
  ctx.lineWidth = Math.max(2, radius - 1);
  for (const pose of poses) {
    const p = pose.landmarks;
    for (const [a, b] of POSE_CONNECTIONS) {
      if (p[a].visibility < VISIBLE || p[b].visibility < VISIBLE) continue;
      ctx.strokeStyle = lineColour(p, a, b);
      ctx.beginPath();
      ctx.moveTo(p[a].x * sx, p[a].y * sy);
      ctx.lineTo(p[b].x * sx, p[b].y * sy);
      ctx.stroke();
    }
    for (const q of p) {
      if (q.visibility < VISIBLE) continue;
      ctx.fillStyle = SIDE_COLOURS[sideOf(q.name)];
      ctx.beginPath();
      ctx.arc(q.x * sx, q.y * sy, radius, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

// The world landmarks (metres, y down, z away from the camera) seen from a direction the
// mouse chooses: drag sideways to turn about the vertical axis, up and down to tilt.
class Skeleton3d {
  constructor(canvas) {
    this.canvas = canvas;
    this.yaw = 0.5;
    this.pitch = -0.25;
    this.points = null;
    let last = null;
    canvas.addEventListener("pointerdown", (e) => { last = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointerup", () => { last = null; });
    canvas.addEventListener("pointermove", (e) => {
      if (!last) return;
      this.yaw += (e.clientX - last[0]) * 0.01;
      this.pitch = Math.max(-1.5, Math.min(1.5, this.pitch + (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY];
      this.draw();
    });
    this.draw();
  }

  show(worldLandmarks) {
    this.points = worldLandmarks;
    this.draw();
  }

  project(p) {
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    const x = cy * p.x + sy * p.z, z1 = -sy * p.x + cy * p.z;
    const y = cp * p.y - sp * z1, depth = sp * p.y + cp * z1;
    const scale = this.canvas.height / 2.4;  // about 2.4 m of height fill the canvas
    return [this.canvas.width / 2 + x * scale, this.canvas.height / 2 + y * scale, depth];
  }

  draw() {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    this.drawFloor(ctx);
    if (!this.points) {
      ctx.fillStyle = "#667";
      ctx.fillText("no pose yet", 10, 20);
      return;
    }
    const q = this.points.map((p) => this.project(p));
    const lines = POSE_CONNECTIONS.map(([a, b]) => [a, b, (q[a][2] + q[b][2]) / 2]);
    lines.sort((l, m) => m[2] - l[2]);  // far lines first
    ctx.lineWidth = 3;
    for (const [a, b] of lines) {
      ctx.strokeStyle = lineColour(this.points, a, b);
      ctx.beginPath();
      ctx.moveTo(q[a][0], q[a][1]);
      ctx.lineTo(q[b][0], q[b][1]);
      ctx.stroke();
    }
    for (let i = 0; i < q.length; i++) {
      ctx.fillStyle = SIDE_COLOURS[sideOf(this.points[i].name)];
      ctx.beginPath();
      ctx.arc(q[i][0], q[i][1], 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  // A 2 m square grid at the feet's usual height, so the turning can be seen.
  drawFloor(ctx) {
    ctx.strokeStyle = "#2a2f38";
    ctx.lineWidth = 1;
    for (let k = -1; k <= 1.001; k += 0.5) {
      for (const [a, b] of [[{ x: k, y: 0.9, z: -1 }, { x: k, y: 0.9, z: 1 }], [{ x: -1, y: 0.9, z: k }, { x: 1, y: 0.9, z: k }]]) {
        const p = this.project(a), r = this.project(b);
        ctx.beginPath();
        ctx.moveTo(p[0], p[1]);
        ctx.lineTo(r[0], r[1]);
        ctx.stroke();
      }
    }
  }
}
