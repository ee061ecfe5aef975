/// A memory tier. Every block-program value names the tier it lives in.
///
/// `global` is DRAM / device memory (only global tensors live there), `local` is the per-core
/// L2 on a CPU and shared memory on a GPU, `reg` is registers / thread-private storage.
public enum Tier: String, Hashable, Sendable, CaseIterable {
    case global
    case local
    case reg
}
