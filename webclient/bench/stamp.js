// Benchmark helpers shared by the benchmark pages and injected into the doctor's page: the frame stamp (drawn and
// read back) and the glass-to-glass measurement. Stamp layout (gateway/media/pattern.py): the top width x 5*width/16
// pixels are 5 rows of 16 square blocks, white = 1, black = 0, most significant bit first; rows 0-2 hold the capture
// time as 48 bits of Unix ms, row 3 a 16-bit frame counter, row 4 the XOR of rows 0-3.

export const BLOCKS = 16;
export const ROWS = 5;

export function stampWords(captureMs, counter) {
  const w0 = Math.floor(captureMs / 2 ** 32) & 0xffff;
  const w1 = Math.floor(captureMs / 2 ** 16) & 0xffff;
  const w2 = captureMs & 0xffff;
  const w3 = counter & 0xffff;
  return [w0, w1, w2, w3, w0 ^ w1 ^ w2 ^ w3];
}

// Draw the stamp with a 2D context on a canvas of width `width`.
export function drawStamp(ctx, width, captureMs, counter) {
  const block = Math.floor(width / BLOCKS);
  stampWords(captureMs, counter).forEach((word, row) => {
    for (let col = 0; col < BLOCKS; col++) {
      ctx.fillStyle = (word >> (15 - col)) & 1 ? "#ebebeb" : "#101010";
      ctx.fillRect(col * block, row * block, block, block);
    }
  });
}

// Read {captureMs, counter} from RGBA pixels of the stamp area (width x 5*block), or null if the check fails.
export function readStamp(pixels, width) {
  const block = Math.floor(width / BLOCKS);
  const half = block >> 1;
  const step = Math.max(1, half >> 3);
  const words = [];
  for (let row = 0; row < ROWS; row++) {
    let word = 0;
    for (let col = 0; col < BLOCKS; col++) {
      const y0 = row * block + (block >> 2);
      const x0 = col * block + (block >> 2);
      let sum = 0;
      let n = 0;
      for (let y = y0; y < y0 + half; y += step) {
        for (let x = x0; x < x0 + half; x += step) {
          const i = (y * width + x) * 4;
          sum += 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
          n++;
        }
      }
      word = (word << 1) | (sum / n > 128 ? 1 : 0);
    }
    words.push(word);
  }
  if ((words[0] ^ words[1] ^ words[2] ^ words[3]) !== words[4]) return null;
  return { captureMs: words[0] * 2 ** 32 + words[1] * 2 ** 16 + words[2], counter: words[3] };
}

// Receiver-side video figures from getStats: cumulative counters, to be differenced over a window.
export async function videoCounters(pc) {
  let out = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      out = {
        jitterBufferDelay: s.jitterBufferDelay ?? 0,
        jitterBufferEmittedCount: s.jitterBufferEmittedCount ?? 0,
        jitterBufferTargetDelay: s.jitterBufferTargetDelay ?? 0,
        jitterBufferMinimumDelay: s.jitterBufferMinimumDelay ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
        framesDropped: s.framesDropped ?? 0,
        totalDecodeTime: s.totalDecodeTime ?? 0,
        totalProcessingDelay: s.totalProcessingDelay ?? 0,
        totalAssemblyTime: s.totalAssemblyTime ?? 0,
        framesAssembledFromMultiplePackets: s.framesAssembledFromMultiplePackets ?? 0,
        bytesReceived: s.bytesReceived ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        codecId: s.codecId ?? "",
        decoderImplementation: s.decoderImplementation ?? "",
      };
    }
  });
  if (out && out.codecId) {
    (await pc.getStats()).forEach((s) => {
      if (s.id === out.codecId) out.mimeType = s.mimeType;
    });
  }
  return out;
}

function perFrame(before, after) {
  const emitted = after.jitterBufferEmittedCount - before.jitterBufferEmittedCount;
  const decoded = after.framesDecoded - before.framesDecoded;
  return {
    jitterBufferMs: emitted > 0 ? (1000 * (after.jitterBufferDelay - before.jitterBufferDelay)) / emitted : null,
    jitterBufferTargetMs: emitted > 0
      ? (1000 * (after.jitterBufferTargetDelay - before.jitterBufferTargetDelay)) / emitted : null,
    decodeMs: decoded > 0 ? (1000 * (after.totalDecodeTime - before.totalDecodeTime)) / decoded : null,
    processingMs: decoded > 0 ? (1000 * (after.totalProcessingDelay - before.totalProcessingDelay)) / decoded : null,
    framesDecoded: decoded,
    framesDropped: after.framesDropped - before.framesDropped,
  };
}

// Glass-to-glass: for each new frame shown by `video`, (display time - capture time) in ms, read from the stamp.
// Display time is rVFC's expectedDisplayTime (performance.now() clock) converted to Unix ms with timeOrigin.
export function measureGlassToGlass(video, pc, { frames = 1000, warmup = 60, timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const canvas = document.createElement("canvas");
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const latencies = [];
    const counters = [];
    // Split of each latency at the frame's arrival (rVFC receiveTime: last packet received), when Chromium gives it.
    const toReceive = [];
    const receiveToDisplay = [];
    let seen = 0;
    let unreadable = 0;
    let repeated = 0;
    let lastCounter = -1;
    let before = null;
    let startedAt = 0;
    const deadline = performance.now() + timeoutMs;
    const finish = async (reason) => {
      const after = await videoCounters(pc);
      resolve({
        reason, latencies, counters, unreadable, repeated, toReceive, receiveToDisplay,
        width: video.videoWidth, height: video.videoHeight,
        stats: before && after ? perFrame(before, after) : null,
        seconds: (performance.now() - startedAt) / 1000,
        mimeType: after?.mimeType ?? null,
        decoder: after?.decoderImplementation ?? null,
        kbps: before && after ? (8 * (after.bytesReceived - before.bytesReceived)) / (performance.now() - startedAt) : null,
      });
    };
    const onFrame = async (now, meta) => {
      const width = video.videoWidth;
      const height = Math.floor(width / BLOCKS) * ROWS;
      if (width > 0) {
        if (canvas.width !== width || canvas.height !== height) {
          canvas.width = width;
          canvas.height = height;
        }
        ctx.drawImage(video, 0, 0, width, height, 0, 0, width, height);
        const stamp = readStamp(ctx.getImageData(0, 0, width, height).data, width);
        seen++;
        if (seen === warmup) {
          before = await videoCounters(pc);
          startedAt = performance.now();
        }
        if (!stamp) {
          if (seen > warmup) unreadable++;
        } else if (stamp.counter === lastCounter) {
          if (seen > warmup) repeated++;
        } else {
          lastCounter = stamp.counter;
          if (seen > warmup) {
            latencies.push(performance.timeOrigin + meta.expectedDisplayTime - stamp.captureMs);
            counters.push(stamp.counter);
            if (meta.receiveTime) {
              toReceive.push(performance.timeOrigin + meta.receiveTime - stamp.captureMs);
              receiveToDisplay.push(meta.expectedDisplayTime - meta.receiveTime);
            }
          }
        }
      }
      if (latencies.length >= frames) return finish("done");
      if (performance.now() > deadline) return finish("timeout");
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  });
}
