// Persona wizard: record a voice sample (MediaRecorder, with a timer) and take a photo with the
// camera (getUserMedia + canvas). Both put their result into the form's ordinary file input, so
// the same form posts it, with or without htmx. Everything else works without this script.
(function () {
  "use strict";

  var MAX_RECORD_SECONDS = 180; // the provider's recommended maximum
  var recording = null;
  var camera = null;

  function canRecord() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
  }

  function canCapture() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.HTMLCanvasElement);
  }

  // Controls stay hidden until we know the browser supports them (htmx swaps in new sections).
  function reveal(root) {
    if (canRecord()) root.querySelectorAll("[data-recorder]").forEach(function (el) { el.hidden = false; });
    if (canCapture()) root.querySelectorAll("[data-camera]").forEach(function (el) { el.hidden = false; });
  }

  function putFile(form, inputName, file) {
    var input = form.querySelector('input[type=file][name="' + inputName + '"]');
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function clock(seconds) {
    var s = Math.floor(seconds % 60);
    return Math.floor(seconds / 60) + ":" + (s < 10 ? "0" : "") + s;
  }

  function recorderType() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported(types[i])) return types[i];
    }
    return "";
  }

  function extensionFor(mime) {
    if (mime.indexOf("ogg") !== -1) return ".ogg";
    if (mime.indexOf("mp4") !== -1) return ".m4a";
    return ".webm";
  }

  function startRecording(box) {
    var status = box.querySelector("[data-record-status]");
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var type = recorderType();
      var recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      var chunks = [];
      var started = Date.now();
      var timer = box.querySelector("[data-record-timer]");
      recording = { box: box, recorder: recorder, stream: stream };
      recording.tick = setInterval(function () {
        var elapsed = (Date.now() - started) / 1000;
        timer.textContent = clock(elapsed);
        if (elapsed >= MAX_RECORD_SECONDS) stopRecording();
      }, 250);
      recorder.ondataavailable = function (event) { if (event.data.size) chunks.push(event.data); };
      recorder.onstop = function () {
        var mime = recorder.mimeType || type || "audio/webm";
        var file = new File(chunks, "recording" + extensionFor(mime), { type: mime });
        putFile(box.closest("form"), "sample", file);
        var playback = box.querySelector("[data-record-playback]");
        playback.src = URL.createObjectURL(file);
        playback.hidden = false;
        status.textContent = "Recorded " + timer.textContent + ". Listen back, then upload it below.";
      };
      recorder.start(1000);
      box.querySelector("[data-record-start]").disabled = true;
      box.querySelector("[data-record-stop]").disabled = false;
      status.textContent = "Recording… read the text above.";
    }).catch(function () {
      status.textContent = "We could not use your microphone. Allow access, or upload a recording instead.";
    });
  }

  function stopRecording() {
    if (!recording) return;
    clearInterval(recording.tick);
    if (recording.recorder.state !== "inactive") recording.recorder.stop();
    recording.stream.getTracks().forEach(function (track) { track.stop(); });
    recording.box.querySelector("[data-record-start]").disabled = false;
    recording.box.querySelector("[data-record-stop]").disabled = true;
    recording = null;
  }

  function startCamera(box) {
    var status = box.querySelector("[data-camera-status]");
    var video = box.querySelector("[data-camera-video]");
    navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 1280 } } })
      .then(function (stream) {
        camera = { box: box, stream: stream };
        video.srcObject = stream;
        video.hidden = false;
        box.querySelector("[data-camera-capture]").disabled = false;
        status.textContent = "Look at the camera, then take the photo.";
      })
      .catch(function () {
        status.textContent = "We could not use your camera. Allow access, or upload a photo instead.";
      });
  }

  function capturePhoto(box) {
    var video = box.querySelector("[data-camera-video]");
    var canvas = box.querySelector("[data-camera-canvas]");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob(function (blob) {
      putFile(box.closest("form"), "photo", new File([blob], "camera.jpg", { type: "image/jpeg" }));
      box.querySelector("[data-camera-status]").textContent = "Photo taken. Upload it below, or take another.";
    }, "image/jpeg", 0.92);
    stopCamera();
    canvas.hidden = false;
    canvas.style.maxWidth = "320px";
  }

  function stopCamera() {
    if (!camera) return;
    camera.stream.getTracks().forEach(function (track) { track.stop(); });
    camera.box.querySelector("[data-camera-video]").hidden = true;
    camera.box.querySelector("[data-camera-capture]").disabled = true;
    camera = null;
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("[data-record-start],[data-record-stop],[data-camera-start],[data-camera-capture]");
    if (!target) return;
    if (target.matches("[data-record-start]")) startRecording(target.closest("[data-recorder]"));
    else if (target.matches("[data-record-stop]")) stopRecording();
    else if (target.matches("[data-camera-start]")) startCamera(target.closest("[data-camera]"));
    else capturePhoto(target.closest("[data-camera]"));
  });
  // A section swapped out by htmx must not leave the microphone or camera on (other sections'
  // polling swaps leave them alone).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    if (recording && target.contains(recording.box)) stopRecording();
    if (camera && target.contains(camera.box)) stopCamera();
  });
  document.addEventListener("htmx:load", function (event) { reveal(event.target); });
  document.addEventListener("DOMContentLoaded", function () { reveal(document); });
})();
