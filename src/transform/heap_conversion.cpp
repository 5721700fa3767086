// Discovery (which blocks must be converted) and conversion (into new blocks) of heap objects.
#include "heap_conversion.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <sys/sysinfo.h>

#include "heap_tracking.h"
#include "integers.h"

namespace molt::transform {
namespace {

using schema::Member;
using schema::Schema;
using schema::Type;
using schema::TypeId;
using schema::TypeKind;

using schema::layout;

Error failure(const std::string &where, const std::string &why) { return Error{"", where + ": " + why}; }

// Below this many objects, a second thread costs more than it saves.
constexpr std::size_t parallel_threshold = 4000;
// Discovery: pointers followed by one thread before a second may join (a few: the first tables
// of block starts come from the reserve made before the pause), and pointers that must then wait
// to share.
constexpr std::size_t steps_alone = 64, enough_to_share = 128;
// How many objects ahead discovery and conversion ask for the old objects they will read.
constexpr std::size_t prefetch_distance = 8;

}  // namespace

HeapConverter::HeapConverter(Image old_image, Image new_image, ValueConverter &converter)
    : m_old(old_image), m_new(new_image), m_converter(converter)
{
    begin_transformer_allocations();
    m_converter.set_pointer_translator(this);
    // Each old global with its counterpart, found once: the same qualified name, or the one a
    // MOLT_RENAME_VARIABLE of the new version gives it.
    for (const schema::Variable &variable : m_old.schema->variables)
        if (!variable.read_only && !variable.thread_local_storage && variable.size)
            m_globals.push_back({m_old.bias + variable.address, m_old.bias + variable.address + variable.size, &variable,
                                 m_new.schema->find_variable(m_new.schema->new_name(
                                     schema::Transformer::Kind::RenameVariable, variable.qualified_name))});
    std::sort(m_globals.begin(), m_globals.end(), [](const GlobalRange &a, const GlobalRange &b) { return a.start < b.start; });
    for (const GlobalRange &range : m_globals) {
        m_globals_start = m_globals_start ? std::min(m_globals_start, range.start) : range.start;
        m_globals_end = std::max(m_globals_end, range.end);
    }
}

HeapConverter::~HeapConverter()
{
    m_converter.set_pointer_translator(nullptr);
    if (!m_keep)
        release_new_blocks();
}

void HeapConverter::keep_new_blocks()
{
    m_keep = true;
    keep_transformer_allocations();
}

// Each walker's queue swapped for an empty one with no QueueMemory: its nodes go (those in the
// memory stay there, the others are scrubbed and freed).
void HeapConverter::let_go_of_queues()
{
    for (Walker *walker : {&m_first, &m_second_walker})
        decltype(walker->candidates)(QueueAllocator<Candidate>()).swap(walker->candidates);
}

// The walkers' queues first let go of their nodes (a discovery that failed, by an exception
// say, may have left nodes in them that lie in the memory): then it is unmapped. And the
// segments prepared for copies that the conversion did not need.
void HeapConverter::release_scratch_memory()
{
    let_go_of_queues();
    m_queue_memory.release();
    m_copy_reserve.release();
}

void HeapConverter::release_new_blocks()
{
    release_scratch_memory();
    if (allocator_may_be_locked())
        return;  // left allocated: better than a process that hangs in free()
    free_transformer_allocations();
    // A transformer may have freed or moved (realloc) a new copy it was given: not freed again.
    m_blocks.for_each([](Block &block) {
        if (block.new_start && !block.view && still_allocated(reinterpret_cast<void *>(block.new_start)))
            std::free(reinterpret_cast<void *>(block.new_start));
    });
    m_blocks.clear();
    m_block_starts.clear();
    set_discovered(false);
}

HeapConverter::Reclaimed HeapConverter::free_old_blocks()
{
    release_scratch_memory();
    Reclaimed reclaimed;
    m_blocks.for_each([&](Block &block) {
        if (block.view)
            return;  // part of another block
        // Tracked when discovery read its trailer, and nothing has freed it since: its trailer is
        // read again (not looked for: below a block Molt did not allocate, the place a made-up
        // chunk header leads to may be anywhere, unmapped or PROT_NONE by now).
        auto tracked = block.tracked ? tracked_block(reinterpret_cast<const void *>(block.old_start),
                                                     [](std::uintptr_t, std::size_t) { return true; })
                                     : std::nullopt;
        if (!tracked) {
            ++reclaimed.kept;
            return;
        }
        reclaimed.bytes += tracked->size;
        ++reclaimed.blocks;
        std::free(tracked->start);
    });
    m_blocks.clear();  // nothing to translate any more: the conversion is over
    m_block_starts.clear();
    set_discovered(false);
    return reclaimed;
}

void HeapConverter::discover(TypeId old_type, TypeId new_type, const void *old_address, const std::string &where)
{
    discover(m_converter.program(old_type, new_type), old_address, where);
}

void HeapConverter::discover(const ConversionProgram &program, const void *old_address, const std::string &where)
{
    if (program.reach.empty())
        return;  // nothing it reaches changed
    m_roots.push_back(std::make_unique<std::string>(where));
    walk(program, static_cast<const unsigned char *>(old_address), m_roots.back().get(), m_first);
}

void HeapConverter::take_readable_memory()
{
    if (!m_readable.taken() && !m_readable_unknown)
        m_readable_unknown = !m_readable.query() && !m_readable.take();
}

std::size_t HeapConverter::pointer_slots(const ConversionProgram &program)
{
    std::size_t slots = 0;
    for (const ReachStep &reach : program.reach) {
        if (reach.union_index >= 0) {  // whichever case is chosen: the biggest
            std::size_t most = 0;
            for (const UnionConversion::Case &each : program.unions[static_cast<std::size_t>(reach.union_index)].cases)
                most = std::max(most, pointer_slots(*each.program));
            slots += most;
        } else if (reach.element) {
            slots += reach.count * pointer_slots(*reach.element);
        } else {
            ++slots;
        }
    }
    return slots;
}

// A queue of pointers to follow, not recursion: a list of a million nodes is a chain of a million
// pointers. First in, first out: the chains of a hash table are followed side by side, so that
// the object a few places ahead can be asked for now and has arrived when its turn comes. The
// roots' big arrays were queued in two halves, one per walker (walk); otherwise one thread
// begins (most updates convert few objects, and a thread costs more than it saves), and when many
// pointers still wait after a few dozen, a second thread takes half of them. Blocks reachable
// from both walkers are claimed by whichever meets them first (BlockStarts::insert_new).
Result<bool> HeapConverter::find_blocks()
{
    m_stop.store(false, std::memory_order_relaxed);
    Walker &second = m_second_walker;  // holds the second half of a big root's pointers, if any
    Result<bool> found = follow(m_first, steps_alone);
    if (m_failing_discovery)
        throw std::bad_alloc();  // (fault injection) the queues hold nodes in their QueueMemory
    std::vector<std::pair<std::size_t, std::size_t>> unused;  // what is left of each walker's batch
    // (walk_pointer links pointee programs on first use: here, before a second thread starts.)
    if (found && m_parallel && m_readable.taken() &&
        m_first.candidates.size() + second.candidates.size() >= enough_to_share && !link_pointees(m_first) &&
        !link_pointees(second)) {
        if (second.candidates.empty())
            move_newer_half(m_first, second);
        Result<bool> theirs = true;
        m_first.state.store(Walker::idle);
        second.state.store(Walker::idle);
        m_parallel([&] { found = follow_sharing(m_first, second); }, [&] { theirs = follow_sharing(second, m_first); });
        count(second);
        unused.emplace_back(second.next_index, second.end_index);
        if (found)
            found = theirs;
    } else if (found) {
        // One thread: the second half's pointers, if the roots were queued in two, after the first's.
        m_first.candidates.insert(m_first.candidates.end(), second.candidates.begin(), second.candidates.end());
        second.candidates.clear();
        found = follow(m_first, no_block);
    }
    count(m_first);
    unused.emplace_back(m_first.next_index, m_first.end_index);
    m_first.next_index = m_first.end_index = 0;
    if (found)
        fill_unused_indices(unused);
    // The queues' malloc'd nodes go now, scrubbed (old addresses); their QueueMemory is unmapped
    // after the pause (release_scratch_memory): unmapping megabytes of touched pages took a
    // third of a millisecond, and nothing scans it (it holds no tracked block).
    let_go_of_queues();
    return found;
}

// On two threads, each walker follows its queue and, when the other has run out, gives it half of
// what it holds: the two queues seldom last equally (at a million keys, one walker ended 1 to 20
// ms before the other; at 10,000, 0.04 to 0.17 ms of a 1.7 ms pause). Discovery ends when both
// have run out, or when one fails. Each walker moves its own state by compare-and-exchange, and
// `done` is final, so that neither a failure's `done` nor work given at the last moment is lost.
// The two may also run one after the other on one thread (the runtime lends no second): the
// first, seeing the second not started, ends alone; the second then follows its whole queue.
Result<bool> HeapConverter::follow_sharing(Walker &mine, Walker &theirs)
{
    int expected = Walker::idle;
    if (!mine.state.compare_exchange_strong(expected, Walker::running))
        return true;  // done before it started: the other failed, and its failure is the update's
    try {
        for (;;) {
            Result<bool> followed = follow(mine, no_block, &theirs);
            if (!followed || m_stop.load(std::memory_order_relaxed)) {
                m_stop.store(true, std::memory_order_relaxed);
                end_walker(theirs);  // it may be waiting for work: none will come
                return followed;
            }
            if (!wait_for_work(mine, theirs))
                return true;
        }
    } catch (...) {  // (follow catches what it throws; an error's own message may not be made)
        m_stop.store(true, std::memory_order_relaxed);
        end_walker(theirs);
        throw;
    }
}

void HeapConverter::end_walker(Walker &walker)
{
    walker.state.store(Walker::done);
    walker.state.notify_one();
}

// The newer half of one walker's queue, moved to the end of the other's.
void HeapConverter::move_newer_half(Walker &from, Walker &to)
{
    auto half = from.candidates.begin() + static_cast<std::ptrdiff_t>(from.candidates.size() / 2);
    to.candidates.insert(to.candidates.end(), half, from.candidates.end());
    from.candidates.erase(half, from.candidates.end());
}

// Half of the giver's queue to the taker, which said it was hungry. Published by
// compare-and-exchange: the taker may have ended alone meanwhile (it saw the giver not started),
// and then the half comes back (its queue was empty, and it no longer touches it).
void HeapConverter::give_half(Walker &giver, Walker &taker)
{
    move_newer_half(giver, taker);
    int expected = Walker::hungry;
    if (taker.state.compare_exchange_strong(expected, Walker::fed)) {
        taker.state.notify_one();
        return;
    }
    giver.candidates.insert(giver.candidates.end(), taker.candidates.begin(), taker.candidates.end());
    taker.candidates.clear();
}

// This walker ran out: true when the other gives it work, false when discovery is over (the
// other ran out too, has not started, or failed). The stores and loads are sequentially
// consistent: when both run out at once, at least one sees the other hungry.
bool HeapConverter::wait_for_work(Walker &mine, Walker &theirs)
{
    int expected = Walker::running;
    if (!mine.state.compare_exchange_strong(expected, Walker::hungry))
        return false;  // done: the other failed
    int other = theirs.state.load();
    if (other == Walker::hungry || other == Walker::idle || other == Walker::done) {  // no work will come
        expected = Walker::hungry;
        if (mine.state.compare_exchange_strong(expected, Walker::done)) {
            if (other == Walker::hungry)
                end_walker(theirs);
            return false;
        }
        // Not hungry any more: given work after all (the other, before it ran out), or ended.
    } else {
        mine.state.wait(Walker::hungry);
    }
    expected = Walker::fed;
    return mine.state.compare_exchange_strong(expected, Walker::running);
}

Result<bool> HeapConverter::follow(Walker &walker, std::size_t limit, Walker *sharing)
{
    // The other walker ran out and waits: it gets half of this queue, when there is enough to share.
    constexpr std::size_t worth_sharing = 64;
    try {
        auto &candidates = walker.candidates;
        for (std::size_t done = 0; done < limit && !candidates.empty(); ++done) {
            if (m_stop.load(std::memory_order_relaxed))
                return true;  // the other walker failed: its failure is the update's
            // (acquire: the other walker's last changes to its queue, before it said so, are seen)
            if (sharing && sharing->state.load(std::memory_order_acquire) == Walker::hungry &&
                candidates.size() >= worth_sharing)
                give_half(walker, *sharing);
            if (candidates.size() > prefetch_distance) {
                // Its chunk header, its trailer (where a block of one object keeps it, or near:
                // read only after the header, it would be a second miss in a row), and the table
                // entry a claim writes. (The pointee's program is linked by the first walk of its
                // step: not yet, no trailer asked for.)
                const Candidate &ahead = candidates[prefetch_distance];
                __builtin_prefetch(reinterpret_cast<const void *>(ahead.address - 16));
                if (const ConversionProgram *pointee = __atomic_load_n(&ahead.reach->pointee, __ATOMIC_RELAXED))
                    __builtin_prefetch(reinterpret_cast<const void *>(ahead.address + pointee->old_size));
                m_block_starts.prefetch_for_insert(ahead.address);
            }
            Candidate candidate = candidates.front();
            candidates.pop_front();
            std::size_t added = no_block;
            if (auto walked = walk_pointer(candidate, walker, added); !walked) {
                m_stop.store(true, std::memory_order_relaxed);
                return walked;
            }
            if (added == no_block)
                continue;  // known already, or not a heap object (a global)
            const Block &block = m_blocks[added];
            if (block.program->reach.empty())
                continue;
            for (std::uint64_t i = 0; i < block.count; ++i)
                walk(*block.program, reinterpret_cast<const unsigned char *>(block.old_start + i * block.old_size()),
                     candidate.root, walker);
        }
    } catch (const std::exception &exception) {  // on a helper thread, an exception would end the process
        m_stop.store(true, std::memory_order_relaxed);
        return Error{"", std::string("finding heap objects: ") + exception.what()};
    }
    return true;
}

// Every pointee program the queued pointers (and the objects behind them) will need, linked now.
// True when one of them has a MOLT_LENGTH_IN pointer: a block reached both through it and through
// a plain pointer is converted up to the length or whole, as the first to claim it says, and
// which one is first must not depend on two threads' timing.
bool HeapConverter::link_pointees(const Walker &walker)
{
    std::set<const ReachStep *> seen;
    const ReachStep *last = nullptr;  // a root's pointers mostly share one: a set insert per run of them
    bool lengths = false;
    for (const Candidate &candidate : walker.candidates) {
        const ReachStep &reach = *candidate.reach;
        if (&reach == last || !seen.insert(&reach).second)
            continue;
        last = &reach;
        lengths = m_converter.precompile(reach.old_pointee, reach.new_pointee) || reach.has_length || lengths;
        if (!reach.pointee)
            reach.pointee = &m_converter.program(reach.old_pointee, reach.new_pointee);
    }
    return lengths;
}

// A block index for a walker: from its batch, a new batch when that one is used up.
std::size_t HeapConverter::take_index(Walker &walker)
{
    if (walker.next_index == walker.end_index) {
        walker.next_index = m_blocks.reserve(index_batch);
        walker.end_index = walker.next_index + index_batch;
    }
    return walker.next_index++;
}

// The indices the walkers reserved but did not use are holes in the block list: the blocks at the
// end move into them (their table entries follow), and the list ends after the last block. At
// most a batch per walker moves.
void HeapConverter::fill_unused_indices(const std::vector<std::pair<std::size_t, std::size_t>> &unused)
{
    std::size_t reserved = m_blocks.size(), holes = 0;
    for (auto [first, end] : unused)
        holes += end - first;
    std::size_t kept = reserved - holes;  // the blocks there are: indices [0, kept) once filled
    auto is_hole = [&](std::size_t index) {
        for (auto [first, end] : unused)
            if (index >= first && index < end)
                return true;
        return false;
    };
    std::size_t from = reserved;
    for (auto [first, end] : unused)
        for (std::size_t hole = first; hole < end && hole < kept; ++hole) {
            do
                --from;
            while (is_hole(from));
            m_blocks[hole] = m_blocks[from];
            m_blocks[from] = Block{};
            m_block_starts.replace(m_blocks[hole].old_start, hole);
        }
    m_blocks.shrink(kept);
}

void HeapConverter::count(const Walker &walker)
{
    m_objects += walker.objects;
    m_bytes += walker.bytes;
    m_untracked += walker.untracked;
    if (walker.roomy_untracked && !m_roomy_untracked) {
        m_first_roomy = walker.first_roomy;
        m_first_roomy_root = walker.first_roomy_root;
    }
    m_roomy_untracked += walker.roomy_untracked;
    m_serial_blocks += walker.serial;
    m_largest_block = std::max(m_largest_block, walker.largest_block);
}

// Queues the pointers of one value whose pointees changed, as its program lists them.
void HeapConverter::walk(const ConversionProgram &program, const unsigned char *bytes, const std::string *root, Walker &walker)
{
    for (const ReachStep &reach : program.reach) {
        if (reach.union_index >= 0) {  // the member its discriminant chooses (none: the conversion says so)
            const UnionConversion &conversion = program.unions[static_cast<std::size_t>(reach.union_index)];
            if (const UnionConversion::Case *chosen = choose_case(conversion, bytes))
                walk(*chosen->program, bytes + chosen->from, root, walker);
            continue;
        }
        if (reach.element) {
            const std::vector<ReachStep> &inner = reach.element->reach;
            if (inner.size() == 1 && !inner[0].element && inner[0].union_index < 0 && !inner[0].has_length) {
                // An array of pointers (a hash table's 65,536 bucket heads): read in a loop, not
                // a call per element; most slots of a sparse table are empty.
                const unsigned char *slot = bytes + reach.offset + inner[0].offset;
                if (reach.stride == sizeof(std::uintptr_t)) {  // packed: eight slots at a time
                    for (std::uint64_t i = 0; i < reach.count; i += 8) {
                        std::uintptr_t words[8];
                        unsigned held = read_pointer_group(slot + i * sizeof(std::uintptr_t),
                                                           std::min<std::uint64_t>(8, reach.count - i), words);
                        for (; held; held &= held - 1)
                            walker.candidates.push_back({words[__builtin_ctz(held)], &inner[0], root, no_length});
                    }
                    continue;
                }
                for (std::uint64_t i = 0; i < reach.count; ++i, slot += reach.stride) {
                    std::uintptr_t address;
                    std::memcpy(&address, slot, sizeof address);
                    if (address)
                        walker.candidates.push_back({address, &inner[0], root, no_length});
                }
                continue;
            }
            // A big array of a root (a sharded store's 64 shards of 1024 buckets): its pointers
            // queued by two threads at once, the second half's for the second walker to follow.
            if (&walker == &m_first && !m_seeding_halves && m_parallel && reach.count >= 2 &&
                reach.count * reach.stride >= big_array_bytes) {
                std::uint64_t half = reach.count / 2;
                auto queue = [&](Walker &into, std::uint64_t first, std::uint64_t end) {
                    for (std::uint64_t i = first; i < end; ++i)
                        walk(*reach.element, bytes + reach.offset + i * reach.stride, root, into);
                };
                m_seeding_halves = true;  // no halves inside the halves: the second walker is in use
                struct Done {
                    bool &halves;
                    ~Done() { halves = false; }
                } done{m_seeding_halves};
                m_parallel([&] { queue(walker, 0, half); }, [&] { queue(m_second_walker, half, reach.count); });
                continue;
            }
            for (std::uint64_t i = 0; i < reach.count; ++i)
                walk(*reach.element, bytes + reach.offset + i * reach.stride, root, walker);
            continue;
        }
        std::uintptr_t address;
        std::memcpy(&address, bytes + reach.offset, sizeof address);
        if (!address)
            continue;
        std::uint64_t length = no_length;
        if (reach.has_length) {
            __int128 value = read_integer(bytes + reach.length_offset, reach.length_size, reach.length_signed);
            length = value < 0 ? 0 : static_cast<std::uint64_t>(value);
        }
        walker.candidates.push_back({address, &reach, root, length});
    }
}

Result<bool> HeapConverter::walk_pointer(const Candidate &candidate, Walker &walker, std::size_t &added)
{
    std::uintptr_t address = candidate.address;
    const ReachStep &reach = *candidate.reach;
    if (!address || m_block_starts.contains(address))
        return true;  // shared: converted once (pointers into a block's middle are not followed here)
    auto where = [&candidate] { return "an object reached from " + *candidate.root; };  // spelled only on failure
    if (!reach.pointee)
        reach.pointee = &m_converter.program(reach.old_pointee, reach.new_pointee);
    const ConversionProgram &program = *reach.pointee;
    if (global_holding(address))
        return true;  // into a global of the old version, not a heap object: translate() redirects it
    if (program.old_size == 0 || program.new_size == 0)
        return failure(where(), "points to an object of unknown size");
    // The object and the 16 bytes below it (the allocator's chunk header, which tells where a
    // tracked block keeps its trailer) must be mapped: a dangling pointer fails the update
    // instead of crashing the process.
    if (!mapped(address - 16, program.old_size + 16, walker))
        return failure(where(), "points to unmapped or unreadable memory (a dangling pointer?): the object cannot be converted");
    auto tracked = tracked_block(
        reinterpret_cast<const void *>(address), [&](std::uintptr_t at, std::size_t size) { return mapped(at, size, walker); },
        walker.readable.first, walker.readable.second);  // (mostly in the heap the object lies in: one call)
    walker.untracked += !tracked;
    if (!tracked && untracked_chunk_room(reinterpret_cast<const void *>(address), [&](std::uintptr_t at, std::size_t size) {
            return mapped(at, size, walker);
        }) >= 2 * program.old_size) {
        if (!walker.roomy_untracked++) {
            walker.first_roomy = address;
            walker.first_roomy_root = candidate.root;
        }
    }
    // A typed pointer to a tracked block holds size / element size elements: each is converted,
    // or (MOLT_LENGTH_IN) the first `length` of them, the others left zero in a block as big.
    // (Most blocks hold one object: no division, 40 cycles, for them.)
    std::uint64_t capacity = !tracked ? 1 : tracked->size < 2 * program.old_size ? tracked->size >= program.old_size
                                                                                 : tracked->size / program.old_size;
    if (tracked && capacity == 0)
        return failure(where(), "points to a block of " + std::to_string(tracked->size) + " bytes, smaller than one " +
                                  schema::type_to_c(*m_old.schema, program.old_type));
    // Molt trusts a trailer's size as glibc trusts its chunks', but one the program overwrote must
    // not lead the conversion out of mapped memory in the pause (arrays only: one object's memory
    // was looked at above).
    if (capacity >= (std::uint64_t{1} << 30))
        return failure(where(), "points to a block of " + std::to_string(capacity) + " elements: more than Molt converts in one block");
    if (capacity > 1 && !mapped(address, capacity * program.old_size, walker))
        return failure(where(), "points to a block whose trailer says " + std::to_string(tracked->size) +
                                  " bytes, which are not all mapped (a trailer the program overwrote?)");
    std::uint64_t count = capacity;
    if (candidate.length != no_length) {
        if (!tracked) {  // a block Molt did not allocate: the length is all there is to know
            capacity = std::max<std::uint64_t>(candidate.length, 1);
            if (candidate.length > (std::uint64_t{1} << 40) / program.old_size)
                return failure(where(), "its length member says " + std::to_string(candidate.length) +
                                          " elements: more than a terabyte, not a length");
            if (!mapped(address, candidate.length * program.old_size, walker))
                return failure(where(), "its length member says " + std::to_string(candidate.length) +
                                          " elements, which are not all in mapped memory");
        } else if (candidate.length > capacity) {
            return failure(where(), "its length member says " + std::to_string(candidate.length) +
                                      " elements, but the block holds " + std::to_string(capacity));
        }
        count = candidate.length;
    }
    if (capacity >= (std::uint64_t{1} << 30))
        return failure(where(), "points to a block of " + std::to_string(capacity) + " elements: more than Molt converts in one block");
    // Claimed here, unless the other walker claimed it since the look above.
    if (!m_block_starts.insert_new(address, [&] { return added = take_index(walker); }))
        return true;
    Block &block = m_blocks[added];  // its new copy is allocated once discovery has ended (allocate_new_blocks)
    block = Block{};
    block.old_start = address;
    block.program = &program;
    block.count = static_cast<std::uint32_t>(count);
    block.capacity = static_cast<std::uint32_t>(capacity);
    block.tracked = tracked.has_value();
    walker.objects += count;
    walker.serial += !program.parallel_safe;
    walker.bytes += count * program.new_size;
    walker.largest_block = std::max<std::uint64_t>(walker.largest_block, capacity * program.old_size);
    return true;
}

bool HeapConverter::mapped(std::uintptr_t address, std::uint64_t size, Walker &walker)
{
    if (address + size < address || address + size > (std::uintptr_t{1} << 57))
        return false;  // past the end of the user address space (garbage such as ~0): not ours
    if (address >= walker.readable.first && address + size <= walker.readable.second)
        return true;  // the heap its last object lay in: two comparisons for most pointers
    // The process's mappings, read once (the program's threads are parked: they stay true), tell
    // readable memory from holes and from PROT_NONE reserves alike, with no system call per page.
    take_readable_memory();
    if (m_readable.taken())
        return m_readable.holds(address, size, walker.readable_hint, &walker.readable);
    // No /proc: the kernel is asked page by page (mincore tells holes only).
    for (std::uintptr_t page = address >> 12; page <= (address + size - 1) >> 12; ++page) {
        if (page == m_last_mapped_page)
            continue;  // neighbours often follow each other
        if (!m_mapped_pages.contains(page)) {  // heaps are dense: one probe per page
            if (!readable(reinterpret_cast<const void *>(page << 12), 4096))
                return false;
            m_mapped_pages.insert(page, 1);
        }
        m_last_mapped_page = page;
    }
    return true;
}

namespace {

// The bytes this process may still take: the system's free memory (page cache aside), and within
// its cgroup's limit (v2: memory.max less memory.current) when it has one. SIZE_MAX: unknown.
std::size_t memory_headroom()
{
    std::size_t headroom = SIZE_MAX;
    struct sysinfo memory;
    if (sysinfo(&memory) == 0)
        headroom = static_cast<std::size_t>(memory.freeram) * memory.mem_unit;
    std::ifstream membership("/proc/self/cgroup");
    std::string line;
    while (std::getline(membership, line)) {
        if (line.rfind("0::", 0) != 0)
            continue;  // cgroup v1 lines: not read
        std::string group = "/sys/fs/cgroup" + line.substr(3);
        std::ifstream limit_file(group + "/memory.max"), current_file(group + "/memory.current");
        std::string limit;
        std::size_t current = 0;
        if (limit_file >> limit && limit != "max" && current_file >> current) {
            std::size_t most = std::strtoull(limit.c_str(), nullptr, 10);
            headroom = std::min(headroom, most > current ? most - current : 0);
        }
    }
    return headroom;
}

// The process's anonymous resident memory (RssAnon: its heaps, mostly), to size what prepare makes
// ready. Not heap_use(): glibc's mallinfo2 walks every free chunk, and after an update has freed
// a million old copies that took a third of a later update's prepare (283 ms at a million keys).
// An estimate is enough here. heap_use() when the kernel does not say.
std::size_t anonymous_resident_bytes()
{
    std::size_t bytes = resident_memory().anonymous_bytes;
    return bytes ? bytes : heap_use().bytes_in_use;
}

}  // namespace

// Before the pause, the first segment of each arena that will cut copies, and a reserve both draw
// from for as much as the conversion may need: a guess, half the heap (the process's anonymous
// resident memory: the update converts part of it, and may grow it), at most 128 MB and an
// eighth of the memory the process may still take. Their page faults in the pause were a
// microsecond or two each on a virtual machine: 25 ms of the pause for a million copies (80 MB)
// on two threads. A guess too big costs that memory for the update's time and prepare's time to
// touch it (what the conversion does not take is unmapped after the pause); too small, the rest
// faults in the pause as before. Returns the bytes made ready.
std::size_t HeapConverter::prepare_copy_segments(std::size_t heap_bytes, std::size_t headroom)
{
    std::size_t ready = 0;
    for (CopyArena &arena : m_arenas) {
        if (arena.prepare())
            ready += SegmentReserve::segment_size;
        arena.draw_from(&m_copy_reserve);
        if (!m_parallel)
            break;  // one thread converts: one arena
    }
    constexpr std::size_t most = std::size_t{128} << 20;
    std::size_t wanted = std::min({heap_bytes / 2, most, headroom / 8});
    if (wanted > ready)
        ready += m_copy_reserve.prepare(wanted - ready);
    return ready;
}

// Before the pause, the lists discovery fills: the block starts' tables (264 KB each, one per
// megabyte of address space that holds a converted block) and the block list (32 bytes a block).
// When the roots hold pointers whose pointees changed, for the heap's size: a table per megabyte
// of it, and a converted block per 128 bytes of it (a guess: kvd has 130 bytes of heap a key, of
// which the entry converts); made in the pause, their pages were 18,000 page faults of a million
// keys' first update (a microsecond or two each here). Otherwise the first 16 tables and a chunk
// of the list (only MOLT_LOCALs can lead to the heap). A guess too big costs memory for the
// update's time; too small, the rest is made in the pause as before. Each at most 64 MB and a
// sixteenth of the memory the process may still take.
void HeapConverter::prepare_lookup_tables(std::size_t heap_bytes, std::size_t headroom, bool roots_reach_heap)
{
    constexpr std::size_t megabyte = std::size_t{1} << 20, most = std::size_t{64} << 20, few_tables = 16;
    std::size_t budget = std::min(most, headroom / 16);
    std::size_t tables = std::min(heap_bytes / megabyte + 2, budget / BlockStarts::table_bytes);
    m_block_starts.reserve(roots_reach_heap ? tables : std::min(tables, few_tables));
    m_blocks.prefault(roots_reach_heap ? std::min(heap_bytes / 128, budget / sizeof(Block)) : 0);
}

std::size_t HeapConverter::prefault(std::size_t root_pointers)
{
    m_readable.query();  // its file opened now, and no snapshot in the pause (Linux 6.11)
    // Twice the roots' pointers: as many more are queued while they wait (a chain's next).
    constexpr std::size_t most = std::size_t{32} << 20;
    if (root_pointers)
        m_queue_memory.reserve(std::min(2 * root_pointers * sizeof(Candidate) + 4096, most));
    std::size_t heap_bytes = anonymous_resident_bytes();  // before this adds its own
    std::size_t headroom = memory_headroom();
    prepare_lookup_tables(heap_bytes, headroom, root_pointers > 0);
    return prepare_copy_segments(heap_bytes, headroom);
}

// The new copies, allocated one after the other once every block is known, not as discovery
// finds them: between two of its random reads, each malloc found the allocator's own state out of
// the cache and the TLB, and cost three times as much (at a million blocks, 270 ms instead of 90).
// They are cut from a CopyArena (heap_tracking.h), not asked of malloc one by one. Zeroed: what
// no step writes (a new member) starts at zero. Two threads (two arenas) when there are many.
Result<bool> HeapConverter::allocate_new_blocks()
{
    auto allocate = [this](CopyArena &arena, std::size_t first, std::size_t end) -> Result<bool> {
        struct Done {  // its last segment let go of, whatever happens
            CopyArena &arena;
            ~Done() { arena.finish(); }
        } done{arena};
        for (std::size_t i = first; i < end; ++i) {
            Block &block = m_blocks[i];
            bool injected = m_failing_allocation && i + 1 == m_failing_allocation;
            std::size_t bytes;
            bool too_big = __builtin_mul_overflow(std::size_t{block.capacity}, block.new_size(), &bytes);
            void *fresh = injected || too_big ? nullptr : arena.allocate(bytes);
            if (!fresh)
                return failure("a heap " + schema::type_to_c(*m_old.schema, block.old_type()),
                               "out of memory converting " + std::to_string(block.capacity) + " objects");
            block.new_start = reinterpret_cast<std::uintptr_t>(fresh);
        }
        return true;
    };
    std::size_t count = m_blocks.size();
    if (!m_parallel || count < parallel_threshold) {
        m_arenas[1].finish();  // not used
        return allocate(m_arenas[0], 0, count);
    }
    Result<bool> mine = true, theirs = true;
    m_parallel([&] { mine = allocate(m_arenas[0], 0, count / 2); }, [&] { theirs = allocate(m_arenas[1], count / 2, count); });
    return mine ? theirs : mine;
}

std::string HeapConverter::untracked_blocks_warning() const
{
    if (!m_roomy_untracked)
        return "";
    char first[32];
    std::snprintf(first, sizeof first, "%#lx", static_cast<unsigned long>(m_first_roomy));
    return std::to_string(m_roomy_untracked) + " heap block" + (m_roomy_untracked == 1 ? "" : "s") +
           " with room for more objects than one carr" + (m_roomy_untracked == 1 ? "ies" : "y") +
           " no size of Molt's (allocated before the runtime was loaded, or a write past the block's end "
           "overwrote its last bytes): converted as one object each; the first at " + first +
           ", reached from " + (m_first_roomy_root ? *m_first_roomy_root : std::string("?"));
}

Result<bool> HeapConverter::convert_blocks()
{
    set_discovered(true);
    if (auto allocated = allocate_new_blocks(); !allocated)
        return allocated;
    if (m_untracked)
        if (auto merged = merge_inner_blocks(); !merged)
            return merged;
    WhereNames wheres(*m_old.schema);
    // Two threads when there is enough to share and a block they may share (the program's
    // threads are parked, so the machine's other cores are idle).
    if (!m_parallel || m_objects < parallel_threshold || m_serial_blocks == m_blocks.size())
        return convert_range(0, m_blocks.size(), Share::all, wheres);
    return convert_shared(wheres);
}

const std::string &HeapConverter::WhereNames::of(TypeId type)
{
    std::lock_guard lock(m_mutex);
    auto [where, inserted] = m_names.try_emplace(type);
    if (inserted)
        where->second = "a heap " + schema::type_to_c(m_schema, type);
    return where->second;
}

// On two threads: this one first converts the blocks whose transformer must run alone (none,
// mostly), while the helper begins on the others; both then take the next stretch of the list
// as they finish one (share_by_stretches). Ranges of the list, not lists of indices: those were a
// tenth of a millisecond of fresh memory for 10,000 blocks.
Result<bool> HeapConverter::convert_shared(WhereNames &wheres) const
{
    const std::size_t blocks = m_blocks.size();
    std::function<Result<bool>()> alone;
    if (m_serial_blocks)
        alone = [&] { return convert_range(0, blocks, Share::serial_only, wheres); };
    return share_by_stretches(
        m_parallel, blocks, std::clamp<std::size_t>(blocks / 64, 64, 16384),
        [&](std::size_t first, std::size_t end) { return convert_range(first, end, Share::parallel_only, wheres); },
        [] { return std::string("converting heap objects"); }, alone);
}

// The blocks [first, end) of the list, those of them `share` says.
Result<bool> HeapConverter::convert_range(std::size_t first, std::size_t end, Share share,
                                          WhereNames &wheres) const
{
    auto mine = [share](const Block &block) {
        return share == Share::all || block.program->parallel_safe == (share == Share::parallel_only);
    };
    const ConversionProgram *last = nullptr;  // the last block's, and its name
    const std::string *where = nullptr;
    try {
        for (std::size_t k = first; k < end; ++k) {
            // The old objects were read in discovery long ago and are out of the cache: ask for
            // those a few blocks ahead now, so that their misses overlap with this conversion
            // (the other thread's too, when the blocks are shared: a wasted request at worst).
            if (k + prefetch_distance < end) {
                const Block &ahead = m_blocks[k + prefetch_distance];
                __builtin_prefetch(reinterpret_cast<const void *>(ahead.old_start));
                __builtin_prefetch(reinterpret_cast<const void *>(ahead.new_start), 1);
            }
            // Half as far ahead, that object has arrived: the pointers in it are read now, and
            // the table entries their translation will read are asked for (a block start's
            // entry is a random line of a big table; other pointers end in the bitmap).
            if (k + prefetch_distance / 2 < end) {
                const Block &soon = m_blocks[k + prefetch_distance / 2];
                for (std::uint64_t offset : soon.program->pointers) {
                    std::uintptr_t pointer;
                    std::memcpy(&pointer, reinterpret_cast<const void *>(soon.old_start + offset), sizeof pointer);
                    m_block_starts.prefetch(pointer);
                    // A transformer likely reads what the old object points to (kvd's v5 parses
                    // each old value string): that line too, unless the pointer is null.
                    if (soon.program->transformer && pointer)
                        __builtin_prefetch(reinterpret_cast<const void *>(pointer));
                }
            }
            const Block &block = m_blocks[k];
            if (!mine(block))
                continue;
            if (block.program != last) {
                last = block.program;
                where = &wheres.of(block.old_type());
            }
            Place place(*where);
            for (std::uint64_t i = 0; i < block.count; ++i) {
                auto converted = m_converter.run(*block.program,
                                                 reinterpret_cast<const unsigned char *>(block.old_start + i * block.old_size()),
                                                 reinterpret_cast<unsigned char *>(block.new_start + i * block.new_size()),
                                                 place, true);  // calloc'd
                if (!converted)
                    return converted;
            }
        }
    } catch (const std::exception &exception) {  // on a helper thread, an exception would end the process
        return Error{"", std::string("converting heap objects: ") + exception.what()};
    }
    return true;
}

// A block inside another: a pointer into the middle of an array was followed before or after
// the pointer to its start (blocks that malloc made never nest: only one Molt did not allocate,
// an element reached alone, can lie inside another). Two copies would tear apart what is one
// object: the inner one becomes a view of the outer one's copy, at the same element. A pointer
// into another type's object (to a member) cannot be redirected so, and fails the update.
Result<bool> HeapConverter::merge_inner_blocks()
{
    const auto &sorted = sorted_blocks();
    std::size_t outer_index = sorted.empty() ? 0 : sorted[0].second;
    for (std::size_t i = 1; i < sorted.size(); ++i) {
        const Block &outer = m_blocks[outer_index];
        Block &inner = m_blocks[sorted[i].second];
        std::uintptr_t outer_end = outer.old_start + outer.capacity * outer.old_size();
        if (inner.old_start >= outer_end) {
            outer_index = sorted[i].second;
            continue;
        }
        // The same element, or the member of the outer block's element that the inner one is.
        std::uintptr_t offset = inner.old_start - outer.old_start;
        auto member = m_converter.corresponding_offset(outer.program->old_type, outer.program->new_type,
                                                       offset % outer.old_size(), inner.program->old_type);
        bool same_element_type = inner.program->old_type == outer.program->old_type;
        std::string where = "a heap " + schema::type_to_c(*m_old.schema, outer.old_type());
        std::string as = "a pointer points " + std::to_string(offset % outer.old_size()) + " bytes into this converted object as " +
                         schema::type_to_c(*m_old.schema, inner.old_type());
        if (!member)
            return failure(where, as + ", where the new version has no member of that type to point to");
        if (inner.old_start + inner.capacity * inner.old_size() > outer_end || (!same_element_type && inner.capacity > 1))
            return failure(where, as + " to a run of objects that does not fit in it: not supported");
        std::free(reinterpret_cast<void *>(inner.new_start));
        inner.new_start = outer.new_start + offset / outer.old_size() * outer.new_size() + *member;
        m_objects -= inner.count;
        inner.count = 0;  // converted as part of the outer block
        inner.view = true;
    }
    return true;
}

// The lookup of the conversion (a look at the bitmap of block starts, mostly), not a binary search
// of the sorted starts: at a million keys the scan asks for millions of words (the entries' key
// and value pointers lie among the old entries), and the search, a cache miss at each of its 20
// steps, was 45% of the scan's time, and the sort it needs another 8%.
std::string HeapConverter::replaced_object_at(std::uintptr_t word) const
{
    const Block *block = block_holding(word);
    if (!block)
        return {};
    char address[32];
    std::snprintf(address, sizeof address, "%#lx", static_cast<unsigned long>(block->old_start));
    return "the old " + schema::type_to_c(*m_old.schema, block->old_type()) + " at " + address;
}

// The block whose old extent holds `address`, by the sorted starts: the one starting at or before
// it (a view lies inside the block before it, and is passed over). Null when there is none.
const HeapConverter::Block *HeapConverter::sorted_block_holding(std::uintptr_t address) const
{
    const auto &sorted = sorted_blocks();
    auto after = std::upper_bound(sorted.begin(), sorted.end(), address,
                                  [](std::uintptr_t value, const std::pair<std::uintptr_t, std::size_t> &entry) {
                                      return value < entry.first;
                                  });
    for (auto at = after; at != sorted.begin();) {
        const Block &block = m_blocks[(--at)->second];
        if (block.view)
            continue;
        return address < block.old_start + block.capacity * block.old_size() ? &block : nullptr;
    }
    return nullptr;
}

std::pair<std::uintptr_t, std::uintptr_t> HeapConverter::replaced_span() const
{
    std::uintptr_t first = ~std::uintptr_t{0}, last = 0;
    for (std::size_t i = 0; i < m_blocks.size(); ++i) {
        const Block &block = m_blocks[i];
        first = std::min(first, block.old_start);
        last = std::max<std::uintptr_t>(last, block.old_start + block.capacity * block.old_size());
    }
    return {first, last};
}

bool HeapConverter::not_to_scan(std::uintptr_t block) const
{
    return m_block_starts.contains(block);  // (the sorted list, mapped memory, is in no heap block)
}

const HeapConverter::Sorted &HeapConverter::sorted_blocks() const
{
    std::call_once(m_sorted_once, [this] {
        m_sorted.resize(m_blocks.size());
        for (std::size_t i = 0; i < m_sorted.size(); ++i)
            m_sorted[i] = {m_blocks[i].old_start, i};  // the key beside the index: the sort reads no block
        std::sort(m_sorted.begin(), m_sorted.end());
    });
    return m_sorted;
}

// Once every block is known (or no longer), and whether the bitmap then tells which block holds an
// address: computed once, not at each of the conversion's lookups (one per pointer converted).
void HeapConverter::set_discovered(bool discovered)
{
    constexpr std::uint64_t farthest = 64 * 1024;  // bytes below: 64 words of the bitmap at most
    m_discovered = discovered;
    // (Blocks Molt did not allocate may be views inside others.)
    m_bitmap_tells = discovered && m_largest_block <= farthest && !m_block_starts.has_unaligned() && !m_untracked;
}

// Mostly one look at the bitmap of block starts tells: the start of a converted block, a place
// inside one, or neither (a string beside the entry that points to it). An address in an old
// global is in no block (and not worth the sorted list, a sort of every block).
const HeapConverter::Block *HeapConverter::block_holding(std::uintptr_t address) const
{
    if (auto near = nearby_block(address))
        return *near;
    if (std::size_t exact = m_block_starts.find(address); exact != BlockStarts::absent)
        return &m_blocks[exact];
    if (global_holding(address))
        return nullptr;
    return block_holding_inside(address);  // not a block's start: that was looked up first
}

const HeapConverter::Block *HeapConverter::block_holding_inside(std::uintptr_t address) const
{
    if (!m_discovered)
        return nullptr;  // before convert_blocks: only exact starts are known
    // Most pointers that are not to a converted block point to the start of another heap block
    // (a string, an unchanged object): its chunk header and trailer say so at once, and heap
    // blocks never nest.
    // Only read where discovery has seen the page mapped, or its snapshot of the mappings says
    // readable (this runs concurrently: read-only).
    auto known_readable = [&](std::uintptr_t at, std::size_t size) {
        return m_readable.taken() ? m_readable.holds(at, size)
                                  : m_mapped_pages.contains(at >> 12) && m_mapped_pages.contains((at + size - 1) >> 12);
    };
    if (known_readable(address - 16, 16) && tracked_block(reinterpret_cast<const void *>(address), known_readable))
        return nullptr;
    return sorted_block_holding(address);
}

// A pointer into an old global or static goes to the same place in the new version's variable
// of the same qualified name: the same offset when the variable's type is unchanged, its start
// when it points at the start.
const HeapConverter::GlobalRange *HeapConverter::global_holding(std::uintptr_t address) const
{
    if (address < m_globals_start || address >= m_globals_end)
        return nullptr;  // the heap lies elsewhere: most pointers leave here
    auto after = std::upper_bound(m_globals.begin(), m_globals.end(), address,
                                  [](std::uintptr_t value, const GlobalRange &range) { return value < range.start; });
    if (after == m_globals.begin() || address >= std::prev(after)->end)
        return nullptr;  // not inside an old global: the common case, found in log(globals)
    return &*std::prev(after);
}

std::optional<std::uintptr_t> HeapConverter::redirect_into_new_global(std::uintptr_t address,
                                                                      std::optional<TypeId> old_pointee) const
{
    const GlobalRange *range = global_holding(address);
    if (!range || !range->counterpart)
        return std::nullopt;
    std::uintptr_t new_start = m_new.bias + range->counterpart->address;
    std::uintptr_t offset = address - range->start;
    if (offset == 0)
        return new_start;
    if (m_converter.identity().identical(range->variable->type, range->counterpart->type))
        return new_start + offset;
    // Into a variable whose type changed: the same element, or the same member of it.
    if (old_pointee)
        if (auto member = m_converter.corresponding_offset(range->variable->type, range->counterpart->type, offset, *old_pointee))
            return new_start + *member;
    const Type &x = layout(*m_old.schema, range->variable->type);
    const Type &y = layout(*m_new.schema, range->counterpart->type);
    if (x.kind == TypeKind::Array && y.kind == TypeKind::Array) {  // untyped: an element's start
        std::uint64_t old_stride = layout(*m_old.schema, x.target).size;
        std::uint64_t new_stride = layout(*m_new.schema, y.target).size;
        if (old_stride && offset % old_stride == 0 && offset / old_stride < schema::total_elements(y))
            return new_start + offset / old_stride * new_stride;
    }
    return std::nullopt;
}

// A thread's argument: into a global (its start, or an element), or to an element of a converted
// block.
std::optional<std::uintptr_t> HeapConverter::redirect_untyped(std::uintptr_t address)
{
    if (!address)
        return std::nullopt;  // most threads are given no argument
    if (global_holding(address))
        return redirect_into_new_global(address);
    const Block *block = block_holding(address);
    if (!block)
        return std::nullopt;
    std::uintptr_t offset = address - block->old_start;
    if (offset % block->old_size() != 0)
        return std::nullopt;
    return block->new_start + offset / block->old_size() * block->new_size();
}

// A pointer into an old global goes to the same place in the new one. Into a variable the new
// version drops, it stays (and the old variable's memory is kept); anywhere the new version has
// nothing of its type, the update fails: after the commit the old pages are released.
Result<std::uintptr_t> HeapConverter::translate_into_global(const GlobalRange &global, std::uintptr_t address,
                                                            TypeId old_pointee, const Place &where)
{
    if (auto moved = redirect_into_new_global(address, old_pointee))
        return *moved;
    if (!global.counterpart) {
        std::lock_guard lock(m_kept_mutex);
        m_kept_globals.insert(global.variable);
        return address;
    }
    return failure(where.text(), "points " + std::to_string(address - global.start) + " bytes into variable " +
                                     global.variable->qualified_name + " as " + schema::type_to_c(*m_old.schema, old_pointee) +
                                     ", where the new version has nothing of that type to point to");
}

bool HeapConverter::keeps(const schema::Variable *variable) const
{
    std::lock_guard lock(m_kept_mutex);
    return m_kept_globals.count(variable) != 0;
}

Result<std::uintptr_t> HeapConverter::translate(std::uintptr_t address, TypeId old_pointee, const Place &where)
{
    const Block *block = block_holding(address);
    if (!block) {
        if (const GlobalRange *global = global_holding(address))
            return translate_into_global(*global, address, old_pointee, where);
        return address;  // an unchanged object, or memory Molt does not know: it stays where it is
    }
    if (address == block->old_start && old_pointee == block->old_type())
        return block->new_start;  // the common case: a block's start (no division)
    return translate_into_block(*block, address, old_pointee, where);
}

// A root's array of pointers was queued in order, and discovery numbered the blocks in the order
// it met them: the block after the last one an array's pointer led to is most often the next
// one's, read in order from the list instead of looked up at a random place of the table of
// block starts (kvd, 10,000 keys: the store's 65,536 bucket heads, 10,000 of them in use).
// `hint` is the index of that guess.
Result<std::uintptr_t> HeapConverter::translate_next(std::uintptr_t address, TypeId old_pointee, const Place &where,
                                                     std::size_t &hint)
{
    if (m_discovered && hint < m_blocks.size()) {
        const Block &guess = m_blocks[hint];
        if (guess.old_start == address && old_pointee == guess.old_type()) {
            ++hint;
            return guess.new_start;
        }
    }
    if (std::size_t exact = m_block_starts.find(address); exact != BlockStarts::absent) {
        hint = exact + 1;  // found the slow way: the guesses go on from there
        const Block &block = m_blocks[exact];
        if (block.old_start == address && old_pointee == block.old_type())  // as translate() would answer
            return block.new_start;
    }
    return translate(address, old_pointee, where);
}

// An element of the block, or a member of one (an int * to its id, a char * into its name): the
// same element, the corresponding member of the new type. Apart from translate(), whose calls
// (one per pointer converted) it made save and restore more registers.
Result<std::uintptr_t> HeapConverter::translate_into_block(const Block &block, std::uintptr_t address, TypeId old_pointee,
                                                           const Place &where) const
{
    std::uintptr_t offset = address - block.old_start;
    std::uint64_t element = offset / block.old_size(), within = offset % block.old_size();
    if (within == 0 && old_pointee == block.old_type())  // an element's start
        return block.new_start + element * block.new_size();
    auto member = m_converter.corresponding_offset(block.program->old_type, block.program->new_type, within, old_pointee);
    if (!member)
        return failure(where.text(), "points " + std::to_string(within) + " bytes into a converted " +
                                         schema::type_to_c(*m_old.schema, block.old_type()) + " as " +
                                         schema::type_to_c(*m_old.schema, old_pointee) +
                                         ", where the new version has no member of that type to point to");
    return block.new_start + element * block.new_size() + *member;
}

}  // namespace molt::transform
