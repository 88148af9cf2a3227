"use strict";
// The page: a photo through the pipeline trace, the live camera over the WebSocket, a video job.

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- the token
// Given once as ?token=..., it is kept for this tab (sessionStorage) and taken out of the
// address bar; every API call then carries it as "Authorization: Bearer".
const tokenKey = "posepipe-token";
(function takeTokenFromAddress() {
  const url = new URL(location.href);
  if (url.searchParams.has("token")) {
    sessionStorage.setItem(tokenKey, url.searchParams.get("token"));
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function authHeaders() {
  const token = sessionStorage.getItem(tokenKey);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  if (response.status === 401) $("token-bar").hidden = false;
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

$("token-save").addEventListener("click", async () => {
  sessionStorage.setItem(tokenKey, $("token-input").value);
  try {
    await api("/healthz");
    $("token-bar").hidden = true;
  } catch (e) {
    $("token-message").textContent = e.message;
  }
});

function setStatus(element, text, isError = false) {
  element.textContent = text;
  element.classList.toggle("error", isError);
}

// ---------------------------------------------------------------- views
document.querySelectorAll("nav button").forEach((button) => {
  button.addEventListener("click", () => {
    document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b === button));
    document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== button.dataset.view; });
  });
});

function dropZone(label, input, onFile) {
  input.addEventListener("change", () => input.files.length && onFile(input.files[0]));
  label.addEventListener("dragover", (e) => { e.preventDefault(); label.classList.add("over"); });
  label.addEventListener("dragleave", () => label.classList.remove("over"));
  label.addEventListener("drop", (e) => {
    e.preventDefault();
    label.classList.remove("over");
    if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]);
  });
}

// ---------------------------------------------------------------- photo
const photoSkeleton = new Skeleton3d($("photo-skeleton"));
const STAGE_CAPTIONS = {
  "1_detector_input.png": "1 · detector input (224×224, letterboxed) with its detections",
  "2_crop.png": "2 · the person's crop (256×256, rotated upright)",
  "3_heatmaps.png": "3 · the landmark model's heatmaps (33 landmarks)",
  "4_mask.png": "4 · the segmentation mask",
  "5_overlay.png": "5 · the landmarks over the photo",
};

function fillTable(table, header, rows) {
  table.replaceChildren();
  const head = table.insertRow();
  header.forEach((h) => { const th = document.createElement("th"); th.textContent = h; head.appendChild(th); });
  for (const row of rows) {
    const tr = table.insertRow();
    row.forEach((cell) => { tr.insertCell().textContent = cell; });
  }
}

async function runPhoto(file) {
  const status = $("photo-status");
  setStatus(status, `finding poses in ${file.name}…`);
  const form = new FormData();
  form.append("file", file);
  try {
    const record = await (await api("/v1/pose?trace=1", { method: "POST", body: form })).json();
    const pictures = record.trace.pictures;
    $("photo-overlay").src = pictures["5_overlay.png"];
    const stages = $("photo-stages");
    stages.replaceChildren();
    for (const [name, caption] of Object.entries(STAGE_CAPTIONS)) {
      if (!pictures[name]) continue;
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = pictures[name];
      img.alt = caption;
      const text = document.createElement("figcaption");
      text.textContent = caption;
      figure.append(img, text);
      stages.appendChild(figure);
    }
    fillTable($("photo-stage-table"), ["stage", "tensor", "shape", "min", "max", "ms"],
      record.trace.stages.map((s) => [s.stage, s.tensor, s.shape.join("×"), s.min.toPrecision(3),
        s.max.toPrecision(3), s.ms.toFixed(1)]));
    const pose = record.poses[0];
    fillTable($("photo-landmarks"), ["landmark", "x", "y", "z", "visibility", "presence"],
      pose ? pose.landmarks.map((p) => [p.name, p.x.toFixed(1), p.y.toFixed(1), p.z.toFixed(1),
        p.visibility.toFixed(3), p.presence.toFixed(3)]) : []);
    photoSkeleton.show(pose ? pose.world_landmarks : null);
    $("photo-result").hidden = false;
    const found = record.poses.length;
    setStatus(status, `${file.name}: ${record.width}×${record.height}, ${found} ${found === 1 ? "person" : "people"}`);
  } catch (e) {
    setStatus(status, `${file.name}: ${e.message}`, true);
  }
}
dropZone($("photo-drop"), $("photo-file"), runPhoto);

// ---------------------------------------------------------------- live camera
// Frames go as JPEG over the WebSocket, each after a {"timestamp_ms"} message, at most 30 a
// second; the server answers each frame it processes and drops the ones that wait too long.
const liveSkeleton = new Skeleton3d($("live-skeleton"));
const live = { socket: null, stream: null, timer: null, sent: 0, replies: 0, withLandmarks: 0, replyTimes: [] };
window.posepipeLive = live;  // for the browser tests

async function startLive() {
  const status = $("live-status");
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640 }, audio: false });
  } catch (e) {
    setStatus(status, `no camera: ${e.message}`, true);
    return;
  }
  const video = $("live-video");
  video.srcObject = live.stream;
  await video.play();
  const protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${protocol}//${location.host}/v1/stream`);
  live.socket = socket;
  socket.onopen = () => {
    const token = sessionStorage.getItem(tokenKey);
    if (token) socket.send(JSON.stringify({ token }));
    setStatus(status, "streaming");
    sendFrames();
  };
  socket.onmessage = (event) => onLiveReply(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (live.socket === socket && event.code !== 1000) setStatus(status, `stream closed: ${event.reason || event.code}`, true);
  };
  $("live-start").disabled = true;
  $("live-stop").disabled = false;
}

function sendFrames() {
  const video = $("live-video");
  const grab = document.createElement("canvas");
  live.timer = setInterval(() => {
    const socket = live.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || !video.videoWidth) return;
    if (socket.bufferedAmount > 2e6) return;  // the network is behind: wait rather than pile up
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    grab.toBlob((blob) => {
      if (!blob || socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ timestamp_ms: performance.now() }));
      socket.send(blob);
      live.sent += 1;
    }, "image/jpeg", 0.8);
  }, 1000 / 30);
}

function onLiveReply(reply) {
  const now = performance.now();
  live.replies += 1;
  live.replyTimes.push(now);
  while (live.replyTimes.length && live.replyTimes[0] < now - 2000) live.replyTimes.shift();
  if (reply.error) {
    setStatus($("live-status"), reply.error, true);
    return;
  }
  const canvas = $("live-canvas");
  canvas.width = reply.width;
  canvas.height = reply.height;
  drawLandmarks2d(canvas, reply.poses, reply.width, reply.height);
  if (reply.poses.length) {
    live.withLandmarks += 1;
    liveSkeleton.show(reply.poses[0].world_landmarks);
  }
  $("live-fps").textContent = (live.replyTimes.length / 2).toFixed(1);
  // From the frame's capture to its answer here (the server's own share is reply.latency_ms).
  $("live-latency").textContent = Math.round(now - reply.timestamp_ms);
  $("live-dropped").textContent = reply.dropped;
}

function stopLive() {
  clearInterval(live.timer);
  if (live.socket) { const s = live.socket; live.socket = null; s.close(1000); }
  if (live.stream) live.stream.getTracks().forEach((t) => t.stop());
  $("live-start").disabled = false;
  $("live-stop").disabled = true;
  setStatus($("live-status"), "stopped");
}
$("live-start").addEventListener("click", startLive);
$("live-stop").addEventListener("click", stopLive);

// ---------------------------------------------------------------- video job
async function runVideo(file) {
  const status = $("video-status");
  $("video-progress-row").hidden = false;
  $("video-result").hidden = true;
  $("video-progress").removeAttribute("value");
  setStatus(status, `uploading ${file.name}…`);
  const form = new FormData();
  form.append("file", file);
  try {
    const { id } = await (await api("/v1/jobs", { method: "POST", body: form })).json();
    let job;
    for (;;) {
      job = await (await api(`/v1/jobs/${id}`)).json();
      const total = job.frames_total;
      if (total) $("video-progress").value = job.frames_done / total;
      setStatus(status, `${job.status}: ${job.frames_done}${total ? ` of ${total}` : ""} frames`);
      if (job.status === "done" || job.status === "failed") break;
      await new Promise((r) => setTimeout(r, 400));
    }
    if (job.status === "failed") throw new Error(job.error);
    $("video-progress").value = 1;
    // Fetched with the token, then shown from memory (a <video src> cannot send headers).
    const overlay = await (await api(`/v1/jobs/${id}/overlay.mp4`)).blob();
    $("video-overlay").src = URL.createObjectURL(overlay);
    const links = $("video-downloads");
    links.replaceChildren();
    for (const name of job.files) {
      const a = document.createElement("a");
      a.textContent = name;
      a.href = "#";
      a.addEventListener("click", async (e) => {
        e.preventDefault();
        const blob = await (await api(`/v1/jobs/${id}/${name}`)).blob();
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = name;
        link.click();
      });
      links.appendChild(a);
    }
    if (job.files.includes("angles.csv")) {
      drawAngleCharts($("video-charts"), await (await api(`/v1/jobs/${id}/angles.csv`)).text());
    } else {
      $("video-charts").textContent = "Nobody was found in the video: no angles.";
    }
    $("video-result").hidden = false;
    setStatus(status, `done: ${job.frames_done} frames`);
  } catch (e) {
    setStatus(status, `${file.name}: ${e.message}`, true);
  }
}
dropZone($("video-drop"), $("video-file"), runVideo);

api("/healthz").catch(() => {});  // shows the token bar where one is needed
