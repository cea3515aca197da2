//! An encoder for raw eBPF instructions, with the opcodes named as in
//! `include/uapi/linux/bpf.h` and `bpf_common.h`.
//!
//! One instruction is eight bytes:
//!
//! ```text
//!  0      7 8   11 12  15 16            31 32                            63
//! +--------+------+------+----------------+--------------------------------+
//! | opcode | dst  | src  | offset (i16)   | immediate (i32)                |
//! +--------+------+------+----------------+--------------------------------+
//! ```
//!
//! The opcode is `class | size | mode` for loads and stores, and
//! `class | op | source` for arithmetic and jumps. A 64-bit immediate load
//! takes two instruction slots.

/// Instruction class: load from an immediate (only `LD_IMM64` is used).
pub const BPF_LD: u8 = 0x00;
/// Instruction class: load from memory into a register.
pub const BPF_LDX: u8 = 0x01;
/// Instruction class: 32-bit jumps.
pub const BPF_JMP: u8 = 0x05;
/// Instruction class: 64-bit arithmetic.
pub const BPF_ALU64: u8 = 0x07;

/// Size modifier: 32-bit word.
pub const BPF_W: u8 = 0x00;
/// Size modifier: 16-bit half word.
pub const BPF_H: u8 = 0x08;
/// Size modifier: byte.
pub const BPF_B: u8 = 0x10;
/// Size modifier: 64-bit double word.
pub const BPF_DW: u8 = 0x18;

/// Mode modifier: immediate operand.
pub const BPF_IMM: u8 = 0x00;
/// Mode modifier: memory operand `[src + off]`.
pub const BPF_MEM: u8 = 0x60;

/// Source modifier: the immediate field.
pub const BPF_K: u8 = 0x00;
/// Source modifier: the source register.
pub const BPF_X: u8 = 0x08;

/// ALU operation: add.
pub const BPF_ADD: u8 = 0x00;
/// ALU operation: bitwise and.
pub const BPF_AND: u8 = 0x50;
/// ALU operation: move.
pub const BPF_MOV: u8 = 0xb0;

/// Jump operation: always.
pub const BPF_JA: u8 = 0x00;
/// Jump operation: if equal.
pub const BPF_JEQ: u8 = 0x10;
/// Jump operation: if unsigned greater than.
pub const BPF_JGT: u8 = 0x20;
/// Jump operation: if not equal.
pub const BPF_JNE: u8 = 0x50;
/// Jump operation: call a helper function (immediate = helper id).
pub const BPF_CALL: u8 = 0x80;
/// Jump operation: return `r0`.
pub const BPF_EXIT: u8 = 0x90;

/// `src` value of `LD_IMM64` meaning "the immediate is a map file descriptor".
pub const BPF_PSEUDO_MAP_FD: u8 = 1;

/// A register, `r0`..`r10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

/// Return value / helper result.
pub const R0: Reg = Reg(0);
/// First argument; the context pointer on entry.
pub const R1: Reg = Reg(1);
/// Second argument.
pub const R2: Reg = Reg(2);
/// Third argument.
pub const R3: Reg = Reg(3);
/// Fourth argument.
pub const R4: Reg = Reg(4);
/// Fifth argument.
pub const R5: Reg = Reg(5);
/// Callee-saved register.
pub const R6: Reg = Reg(6);

/// One eBPF instruction slot, laid out exactly as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode byte.
    pub code: u8,
    /// `dst` in the low nibble, `src` in the high nibble.
    pub regs: u8,
    /// Signed offset (jumps: in instructions, relative to the next one).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// An instruction from its raw fields.
    pub const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Self {
        Insn {
            code,
            regs: (dst.0 & 0x0f) | (src.0 << 4),
            off,
            imm,
        }
    }

    /// Destination register number.
    pub const fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    /// Source register number.
    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }

    /// `dst = src` (64-bit).
    pub const fn mov64_reg(dst: Reg, src: Reg) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0)
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub const fn mov64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_MOV | BPF_K, dst, R0, 0, imm)
    }

    /// `dst += imm` (64-bit).
    pub const fn add64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_ADD | BPF_K, dst, R0, 0, imm)
    }

    /// `dst &= imm` (64-bit).
    pub const fn and64_imm(dst: Reg, imm: i32) -> Self {
        Self::new(BPF_ALU64 | BPF_AND | BPF_K, dst, R0, 0, imm)
    }

    /// `dst = *(size *)(src + off)`; `size` is one of [`BPF_B`], [`BPF_H`],
    /// [`BPF_W`], [`BPF_DW`].
    pub const fn load(size: u8, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(BPF_LDX | size | BPF_MEM, dst, src, off, 0)
    }

    /// `if dst <op> imm goto +off`; `op` is a jump operation.
    pub const fn jmp_imm(op: u8, dst: Reg, imm: i32, off: i16) -> Self {
        Self::new(BPF_JMP | op | BPF_K, dst, R0, off, imm)
    }

    /// `if dst <op> src goto +off`; `op` is a jump operation.
    pub const fn jmp_reg(op: u8, dst: Reg, src: Reg, off: i16) -> Self {
        Self::new(BPF_JMP | op | BPF_X, dst, src, off, 0)
    }

    /// `goto +off`.
    pub const fn ja(off: i16) -> Self {
        Self::new(BPF_JMP | BPF_JA, R0, R0, off, 0)
    }

    /// Call helper number `helper`; arguments in `r1..r5`, result in `r0`.
    pub const fn call(helper: i32) -> Self {
        Self::new(BPF_JMP | BPF_CALL, R0, R0, 0, helper)
    }

    /// Return `r0`.
    pub const fn exit() -> Self {
        Self::new(BPF_JMP | BPF_EXIT, R0, R0, 0, 0)
    }

    /// `dst = map referenced by file descriptor fd`: the two slots of
    /// `LD_IMM64` with `src = BPF_PSEUDO_MAP_FD`.
    pub const fn ld_map_fd(dst: Reg, fd: i32) -> [Self; 2] {
        [
            Self::new(
                BPF_LD | BPF_DW | BPF_IMM,
                dst,
                Reg(BPF_PSEUDO_MAP_FD),
                0,
                fd,
            ),
            Self::new(0, R0, R0, 0, 0),
        ]
    }
}

/// A jump target inside an [`Asm`] program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// A tiny assembler: appends instructions and resolves forward jumps to
/// labels when [`Asm::finish`] is called.
#[derive(Debug, Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

/// An assembly error: a label that was jumped to but never bound, or a
/// jump farther than an `i16` offset reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsmError {
    /// The label was used but never bound with [`Asm::bind`].
    UnboundLabel,
    /// The jump distance does not fit in 16 bits.
    JumpTooFar,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `label` to the next instruction emitted.
    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    /// Appends one instruction.
    pub fn emit(&mut self, insn: Insn) -> &mut Self {
        self.insns.push(insn);
        self
    }

    /// Appends several instruction slots (e.g. an `LD_IMM64`).
    pub fn emit_all(&mut self, insns: &[Insn]) -> &mut Self {
        self.insns.extend_from_slice(insns);
        self
    }

    /// `if dst <op> imm goto label`.
    pub fn jmp_imm(&mut self, op: u8, dst: Reg, imm: i32, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.emit(Insn::jmp_imm(op, dst, imm, 0))
    }

    /// `if dst <op> src goto label`.
    pub fn jmp_reg(&mut self, op: u8, dst: Reg, src: Reg, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.emit(Insn::jmp_reg(op, dst, src, 0))
    }

    /// `goto label`.
    pub fn ja(&mut self, label: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.emit(Insn::ja(0))
    }

    /// Resolves every jump and returns the instructions.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].ok_or(AsmError::UnboundLabel)?;
            let delta = target as isize - (at as isize + 1);
            self.insns[at].off = i16::try_from(delta).map_err(|_| AsmError::JumpTooFar)?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_headers() {
        // r0 = 2 ; BPF_MOV64_IMM(BPF_REG_0, XDP_PASS) is b7 00 0000 02000000
        let i = Insn::mov64_imm(R0, 2);
        assert_eq!((i.code, i.regs, i.off, i.imm), (0xb7, 0x00, 0, 2));
        // r2 = *(u32 *)(r1 + 4) is 61 12 0400 00000000
        let i = Insn::load(BPF_W, R2, R1, 4);
        assert_eq!((i.code, i.regs, i.off), (0x61, 0x12, 4));
        // ldx half and byte
        assert_eq!(Insn::load(BPF_H, R5, R2, 12).code, 0x69);
        assert_eq!(Insn::load(BPF_B, R5, R2, 14).code, 0x71);
        // if r4 > r3 goto +n is 2d 34
        let i = Insn::jmp_reg(BPF_JGT, R4, R3, 7);
        assert_eq!((i.code, i.regs, i.off), (0x2d, 0x34, 7));
        assert_eq!(Insn::jmp_imm(BPF_JNE, R5, 17, 0).code, 0x55);
        assert_eq!(Insn::jmp_imm(BPF_JEQ, R5, 17, 0).code, 0x15);
        assert_eq!(Insn::call(51).code, 0x85);
        assert_eq!(Insn::exit().code, 0x95);
        assert_eq!(Insn::ja(0).code, 0x05);
        assert_eq!(Insn::add64_imm(R4, 14).code, 0x07);
        assert_eq!(Insn::and64_imm(R4, 14).code, 0x57);
        assert_eq!(Insn::mov64_reg(R6, R1).code, 0xbf);
        let [a, b] = Insn::ld_map_fd(R1, 9);
        assert_eq!((a.code, a.regs, a.imm), (0x18, 0x11, 9));
        assert_eq!(b, Insn::new(0, R0, R0, 0, 0));
        assert_eq!(core::mem::size_of::<Insn>(), 8);
    }

    #[test]
    fn resolves_forward_and_backward_jumps() {
        let mut a = Asm::new();
        let top = a.label();
        let end = a.label();
        a.bind(top);
        a.emit(Insn::mov64_imm(R0, 1)); // 0
        a.ja(end); // 1 -> 3: off +1
        a.jmp_imm(BPF_JEQ, R0, 0, top); // 2 -> 0: off -3
        a.bind(end);
        a.emit(Insn::exit()); // 3
        let insns = a.finish().unwrap();
        assert_eq!(insns[1].off, 1);
        assert_eq!(insns[2].off, -3);
    }

    #[test]
    fn unbound_label_is_an_error() {
        let mut a = Asm::new();
        let l = a.label();
        a.ja(l);
        assert_eq!(a.finish(), Err(AsmError::UnboundLabel));
    }
}
