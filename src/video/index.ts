// Video input: decoding with the system's ffmpeg, SmolVLM2's frame sampling and its frame processor.
export { findFfmpeg, probeVideo, decodeFrames, type VideoInfo, type DecodedFrame } from './ffmpeg.js';
export { sampleFrameIndices, linspaceInt, pythonRound, type VideoMeta, type VideoSampling } from './sample.js';
export { loadVideoProcessorConfig, videoFrameToSquare, processVideoFrames, DEFAULT_VIDEO_SAMPLING, type VideoProcessorConfig } from './processor.js';
export { loadVideo, type LoadedVideo, type LoadVideoOptions } from './load.js';
