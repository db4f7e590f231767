"""A tiny H.264 (Constrained Baseline) encoder that codes macroblocks as raw I_PCM samples.

No transforms, no prediction: an IDR picture made of I_PCM macroblocks, then P pictures that skip
every macroblock except the few that change (coded as I_PCM too). Every conforming decoder —
browsers included — plays it. Enough for a short, small, deterministic test video.
"""

from __future__ import annotations

from collections.abc import Iterable

MB = 16  # macroblock size in luma samples
PCM_MB_BYTES = MB * MB + 2 * (MB // 2) * (MB // 2)  # 4:2:0, 8 bits per sample
I_PCM_IN_I_SLICE = 25
I_PCM_IN_P_SLICE = 30
PROFILE_BASELINE = 66
CONSTRAINTS = 0xC0  # constraint_set0 and constraint_set1: Constrained Baseline
LEVEL = 30


class BitWriter:
    """MSB-first bit writer with Exp-Golomb codes."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._acc = 0
        self._bits = 0

    def u(self, bits: int, value: int) -> None:
        """Write ``value`` in ``bits`` bits."""
        for shift in range(bits - 1, -1, -1):
            self._acc = (self._acc << 1) | ((value >> shift) & 1)
            self._bits += 1
            if self._bits == 8:
                self.buf.append(self._acc)
                self._acc = self._bits = 0

    def ue(self, value: int) -> None:
        """Unsigned Exp-Golomb."""
        length = (value + 1).bit_length()
        self.u(length - 1, 0)
        self.u(length, value + 1)

    def se(self, value: int) -> None:
        """Signed Exp-Golomb."""
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        """Zero bits up to the next byte boundary."""
        while self._bits:
            self.u(1, 0)

    def raw(self, data: bytes) -> None:
        """Append whole bytes (must be byte aligned)."""
        assert self._bits == 0, "raw bytes need byte alignment"
        self.buf += data

    def trailing(self) -> bytes:
        """rbsp_trailing_bits, then the finished payload."""
        self.u(1, 1)
        self.align_zero()
        return bytes(self.buf)


def nal(ref_idc: int, nal_type: int, rbsp: bytes) -> bytes:
    """A NAL unit: header byte plus the payload with emulation-prevention bytes."""
    out = bytearray([(ref_idc << 5) | nal_type])
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def sps(width_mbs: int, height_mbs: int, crop_bottom_px: int) -> bytes:
    """Sequence parameter set: POC type 2, one reference frame, optional bottom crop."""
    w = BitWriter()
    w.u(8, PROFILE_BASELINE)
    w.u(8, CONSTRAINTS)
    w.u(8, LEVEL)
    w.ue(0)  # seq_parameter_set_id
    w.ue(0)  # log2_max_frame_num_minus4 -> frame_num has 4 bits
    w.ue(2)  # pic_order_cnt_type
    w.ue(1)  # max_num_ref_frames
    w.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    w.ue(width_mbs - 1)
    w.ue(height_mbs - 1)
    w.u(1, 1)  # frame_mbs_only_flag
    w.u(1, 1)  # direct_8x8_inference_flag
    w.u(1, 1 if crop_bottom_px else 0)  # frame_cropping_flag
    if crop_bottom_px:
        for offset in (0, 0, 0, crop_bottom_px // 2):  # left, right, top, bottom (2-px units)
            w.ue(offset)
    w.u(1, 0)  # vui_parameters_present_flag
    return nal(3, 7, w.trailing())


def pps() -> bytes:
    """Picture parameter set: CAVLC, deblocking controllable per slice."""
    w = BitWriter()
    w.ue(0)  # pic_parameter_set_id
    w.ue(0)  # seq_parameter_set_id
    w.u(1, 0)  # entropy_coding_mode_flag (CAVLC)
    w.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    w.ue(0)  # num_slice_groups_minus1
    w.ue(0)  # num_ref_idx_l0_default_active_minus1
    w.ue(0)  # num_ref_idx_l1_default_active_minus1
    w.u(1, 0)  # weighted_pred_flag
    w.u(2, 0)  # weighted_bipred_idc
    w.se(0)  # pic_init_qp_minus26
    w.se(0)  # pic_init_qs_minus26
    w.se(0)  # chroma_qp_index_offset
    w.u(1, 1)  # deblocking_filter_control_present_flag
    w.u(1, 0)  # constrained_intra_pred_flag
    w.u(1, 0)  # redundant_pic_cnt_present_flag
    return nal(3, 8, w.trailing())


def _slice_tail(w: BitWriter) -> None:
    w.se(0)  # slice_qp_delta
    w.ue(1)  # disable_deblocking_filter_idc: off


def idr_slice(macroblocks: Iterable[bytes]) -> bytes:
    """An IDR picture whose every macroblock is given as PCM samples (in raster order)."""
    w = BitWriter()
    w.ue(0)  # first_mb_in_slice
    w.ue(7)  # slice_type: I (all slices)
    w.ue(0)  # pic_parameter_set_id
    w.u(4, 0)  # frame_num
    w.ue(0)  # idr_pic_id
    w.u(1, 0)  # no_output_of_prior_pics_flag
    w.u(1, 0)  # long_term_reference_flag
    _slice_tail(w)
    for samples in macroblocks:
        w.ue(I_PCM_IN_I_SLICE)
        _pcm(w, samples)
    return nal(3, 5, w.trailing())


def p_slice(frame_num: int, total_mbs: int, changed: dict[int, bytes]) -> bytes:
    """A P picture that skips every macroblock but ``changed`` (address -> PCM samples)."""
    w = BitWriter()
    w.ue(0)  # first_mb_in_slice
    w.ue(5)  # slice_type: P (all slices)
    w.ue(0)  # pic_parameter_set_id
    w.u(4, frame_num % 16)
    w.u(1, 0)  # num_ref_idx_active_override_flag
    w.u(1, 0)  # ref_pic_list_modification_flag_l0
    w.u(1, 0)  # adaptive_ref_pic_marking_mode_flag: sliding window
    _slice_tail(w)
    previous = -1
    for address in sorted(changed):
        w.ue(address - previous - 1)  # mb_skip_run
        w.ue(I_PCM_IN_P_SLICE)
        _pcm(w, changed[address])
        previous = address
    if previous < total_mbs - 1:
        w.ue(total_mbs - 1 - previous)
    return nal(2, 1, w.trailing())


def _pcm(w: BitWriter, samples: bytes) -> None:
    assert len(samples) == PCM_MB_BYTES
    w.align_zero()  # pcm_alignment_zero_bit
    w.raw(samples)


def flat_macroblock(y: int, cb: int, cr: int) -> bytes:
    """PCM samples of one macroblock in a single colour (values kept within 16..240)."""
    y, cb, cr = (min(240, max(16, v)) for v in (y, cb, cr))
    return bytes([y]) * (MB * MB) + bytes([cb]) * 64 + bytes([cr]) * 64
