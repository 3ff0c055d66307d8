"""Everything about containers and pictures, and the only place in stvsr that uses PyAV.

The data path through it: ``probe`` describes an input from one open (``MediaInfo``: streams,
timing, picture, damage); ``decode.iter_frames``, the one frame iterator, yields its frames (all, or
a segment's range), which ``colour.FrameDecoder`` turns into float RGB on the way;
``encode.VideoWriter`` turns float RGB back into the output's pixels (``colour.plan_output``) and
writes them with the source's audio and subtitles (``passthrough``); ``join`` puts the parts of a
segmented run together by stream copy; ``pipe`` reads standard input once (``StreamInput``) and
names the formats standard output is written in. ``container`` holds the facts about muxers and encoders,
``timing`` the timestamp and rotation arithmetic.
"""
from stvsr.runtime.media.colour import FrameDecoder, OutputColour, Picture, plan_output
from stvsr.runtime.media.container import VideoError, check_encoder, library_versions, open_video, part_suffix
from stvsr.runtime.media.decode import count_decoded, iter_frames, read_rgb_frames, sample_clip, thumbnails
from stvsr.runtime.media.encode import VideoWriter
from stvsr.runtime.media.join import JoinError, join_parts
from stvsr.runtime.media.pipe import INPUT_FORMATS, OUTPUT_FORMATS, PIPE, StreamInput, is_pipe
from stvsr.runtime.media.passthrough import Passthrough, StreamPlan, plan_streams
from stvsr.runtime.media.probe import MediaInfo, probe
from stvsr.runtime.media.timing import output_timestamps

__all__ = ["FrameDecoder", "INPUT_FORMATS", "JoinError", "MediaInfo", "OUTPUT_FORMATS", "OutputColour",
           "PIPE", "Passthrough", "Picture", "StreamInput", "StreamPlan", "VideoError", "VideoWriter",
           "check_encoder", "count_decoded", "is_pipe", "iter_frames", "join_parts", "library_versions",
           "open_video", "output_timestamps", "part_suffix", "plan_output", "plan_streams", "probe",
           "read_rgb_frames", "sample_clip", "thumbnails"]
