// Receiving the cabin's media with the least delay (see docs/performance.md).

// The cabin sends its sound and its picture as two separate streams, so that the browser plays each as soon as it
// is decoded instead of holding the picture back to lip-sync it with the sound (with aiortc's timing that hold-back
// grew through a call, to more than 150 ms). Both tracks are shown by the one <video> element.
export function showRemoteTrack(video, event) {
  const others = video.srcObject ? video.srcObject.getTracks().filter((t) => t.kind !== event.track.kind) : [];
  video.srcObject = new MediaStream([...others, event.track]);
  video.play().catch(() => {});
}
