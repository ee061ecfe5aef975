/// The fusion driver's worklist: which kernels no rule applies to yet, in program order.
///
/// Kernels are identified by their rank, their position in the input program: rules rewrite
/// and remove kernels but never add or reorder them, so ranks order every later program too. The
/// first kernel to look at is a heap's minimum, and a kernel's position in the current program
/// (the kernels before it that are still there) a Fenwick tree's prefix sum, so every operation
/// takes O(log n) time however large the program.
struct KernelWorklist {
    /// Per rank: whether the kernel is still in the program.
    private var present: [Bool]
    /// Per rank: whether a rule may apply to the kernel (it is in the heap).
    private var pending: [Bool]
    /// The pending ranks (a binary min-heap; ranks no longer pending are dropped when they surface).
    private var heap: [Int]
    /// A Fenwick tree over `present`: `tree[i]` sums the ranks `i - (i & -i) ..< i` (1-based `i`).
    private var tree: [Int]

    /// A worklist of `count` kernels, all present and pending.
    init(count: Int) {
        present = Array(repeating: true, count: count)
        pending = present
        heap = Array(0..<count)
        tree = Array(repeating: 0, count: count + 1)
        for r in 0..<count { add(1, at: r) }
    }

    /// The first pending kernel in program order, if any.
    var first: Int? {
        mutating get {
            while let top = heap.first {
                if pending[top] && present[top] { return top }
                popMin()
            }
            return nil
        }
    }

    /// Whether the kernel of a rank is still in the program.
    func contains(_ rank: Int) -> Bool { rank >= 0 && rank < present.count && present[rank] }

    /// The kernel's index in the current program: how many kernels before it are still there.
    func position(of rank: Int) -> Int {
        var sum = 0
        var i = rank
        while i > 0 {
            sum += tree[i]
            i -= i & -i
        }
        return sum
    }

    /// Marks a kernel as one a rule may apply to.
    mutating func insert(_ rank: Int) {
        guard contains(rank), !pending[rank] else { return }
        pending[rank] = true
        heap.append(rank)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child] < heap[parent] else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Marks a kernel as stable: no rule applies to it.
    mutating func remove(_ rank: Int) { pending[rank] = false }

    /// Records that a kernel left the program.
    mutating func delete(_ rank: Int) {
        guard contains(rank) else { return }
        present[rank] = false
        pending[rank] = false
        add(-1, at: rank)
    }

    /// Records that exactly the kernels of these ranks remain (after a step that replaced the
    /// whole program), keeping which of them are pending.
    mutating func rebuild(present remaining: [Int]) {
        let keep = Set(remaining)
        for rank in present.indices where present[rank] && !keep.contains(rank) { delete(rank) }
    }

    private mutating func add(_ delta: Int, at rank: Int) {
        var i = rank + 1
        while i < tree.count {
            tree[i] += delta
            i += i & -i
        }
    }

    private mutating func popMin() {
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left] < heap[smallest] { smallest = left }
            if right < heap.count && heap[right] < heap[smallest] { smallest = right }
            guard smallest != parent else { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
