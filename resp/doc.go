// Package resp is quorumkv's Redis-protocol front door: with --resp ADDR a
// node also speaks RESP2, so redis-cli, redis-benchmark and Redis client
// libraries work against the cluster unchanged.
//
// The package depends only on the KV interface it declares (the replication
// coordinator satisfies it); the node wires it with Listen and stops it with
// Server.Shutdown, which lets every batch under way finish and answer
// (Server.Close cancels them).
//
// # Commands
//
// Key-value commands run at the connection's consistency level, quorum
// unless Config.DefaultLevel says otherwise:
//
//	GET key                 the value; nil when absent or deleted. When the key
//	                        holds concurrent values (siblings) the answer is a
//	                        SIBLINGS error that says to use QGET.
//	SET key value           write (see "SET and DEL" below); +OK. Options
//	                        (EX, NX, ...) are refused: there is no expiry and
//	                        no conditional write.
//	DEL key [key ...]       delete each key that has a live value; answers how
//	                        many did (a key named twice counts once).
//	EXISTS key [key ...]    how many of the keys have a live value (a key named
//	                        twice counts twice, as in Redis).
//	MGET key [key ...]      the values in order, nil for absent keys. If any key
//	                        fails or holds siblings, the whole MGET answers that
//	                        error (clients do not expect errors inside MGET).
//	MSET key value [...]    a SET of each pair; +OK. A key named twice gets its
//	                        last value. Not atomic: after an error some keys
//	                        may be written, and the error says how many.
//
// and the quorumkv commands that expose versions, with an optional level of
// their own:
//
//	QGET key [CONSISTENCY l]
//	    [context, value, value, ...]: the context, then every live sibling;
//	    just [context] when the key is absent or deleted (the context is ""
//	    for a key never written).
//	QSET key value [CONTEXT c] [CONSISTENCY l]
//	    write with exactly context c: the value supersedes the versions c
//	    covers and is a sibling of the rest. Without CONTEXT it is a sibling
//	    of whatever is stored, like an HTTP PUT without X-Context. Answers
//	    the new version's context.
//	QDEL key [CONTEXT c] [CONSISTENCY l]
//	    a tombstone with exactly context c; answers the new context.
//	    Without CONTEXT it supersedes every version the key's coordinating
//	    primary holds, like an HTTP DELETE without X-Context.
//
// To resolve siblings: QGET the key, pick or merge the values, and QSET the
// result with the context QGET answered.
//
// # Consistency levels
//
//	CONSISTENCY             answers the connection's level
//	CONSISTENCY level       sets it for the rest of the connection (as cqlsh's
//	                        CONSISTENCY does): one, quorum, all, strong (any
//	                        case), or a number k in 1..N meaning r = w = k.
//
// The levels mean what they mean on the HTTP API (consistency=one|quorum|
// all|strong, r=/w=): one, quorum, all and k wait for that many replica
// answers; strong is linearizable, as long as every write to the key is
// strong too. A count above N is refused at CONSISTENCY time when
// Config.Replicas is set, else by the first command that uses it. RESET
// returns to the default level.
//
// # SET and DEL: overwrites
//
// A blind write (one without a context) in quorumkv is concurrent with what
// is stored and becomes a sibling of it. For SET that would be a trap: a
// client that runs SET k 1 then SET k 2 would find two siblings, and GET k
// would answer an error. So a plain SET is an overwrite
// (replication.Write.Overwrite): the replica that coordinates the write
// supersedes every version it holds, as if the client had read the key
// there and sent that context — Redis's "SET replaces the value". It takes
// one round trip, with no read first. Writes of one key on one coordinator
// are serialised (a node that is one of the key's primaries coordinates
// its writes itself; any other node forwards them to the first live
// primary), so concurrent SETs of a key through one node replace each
// other in order instead of becoming siblings — redis-benchmark without -r
// puts 64 clients on one key of one node. SETs that overlap there may be
// combined into one write of the last value queued, which answers them all
// (replication/coalesce.go): the same outcome as running them back to back. SETs of one key coordinated by
// different replicas at the same moment (clients of different nodes) are
// concurrent writes and may become siblings, as the brief requires; GET
// then answers SIBLINGS, and QGET/QSET resolve them. At level strong the
// write supersedes by tag.
//
// Reading first and writing with the context read was the alternative: it
// costs a second round trip per SET and still races (two SETs that read
// the same context become siblings), so it was dropped once the coordinator
// offered overwrites.
//
// DEL reads each key first (it answers how many keys existed) and, only if
// one holds a live value, writes a tombstone with the context it read, as an
// overwrite too, so the tombstone supersedes what existed; a key that is
// already absent costs no write. QSET and QDEL write with exactly the
// context given — the Dynamo way, for clients that manage versions (a QDEL
// without one is an overwrite, as HTTP's DELETE is).
//
// # Errors
//
// Error replies start with a code word, as Redis's do:
//
//	ERR              a bad request: syntax, arity, key length, value size,
//	                 level, a CONTEXT that does not decode, unknown command
//	SIBLINGS         a GET or MGET met concurrent values; use QGET
//	TOOMANYSIBLINGS  the write would take the key past the sibling limit
//	UNAVAILABLE      fewer replicas than the level needs answered, e.g.
//	                 "UNAVAILABLE needed 2 replicas, 1 answered (write)"; a
//	                 write that fails so may still have reached some replicas
//	                 and become visible later (as in Dynamo and Riak)
//	TIMEOUT          the deadline passed first: the outcome is unknown
//	NOAUTH, WRONGPASS  authentication (Config.AuthToken)
//	NOPROTO          the answer to HELLO: RESP2 only
//
// # Pipelining
//
// A connection reads everything its client has sent (one pipelined batch),
// runs it, and writes all the replies in request order with one write.
// Within a batch, consecutive key-value commands run concurrently in
// waves: a wave never holds two commands on the same key unless both only
// read it, and ends at any connection command (CONSISTENCY, AUTH, SELECT,
// ...). So each command sees the effect of the earlier commands of its
// connection on its keys and level, exactly as if they ran one by one,
// while the replica round trips of independent commands overlap — which is
// what makes redis-benchmark -P 16 fast. Commands of one pipeline on
// different keys may therefore reach the replicas in any order; a client
// that needs one write visible before another must wait for its reply, as
// it would against any distributed store. Config.Concurrency bounds a
// wave, and the keys of one MGET, MSET, DEL or EXISTS in flight at once.
// The concurrent parts run on a pool of long-lived goroutines (workers.go),
// whose grown stacks make a wave cheap even against a fast KV.
//
// Waves pay off when a connection pipelines against a KV with real round
// trips: against an in-memory KV delayed 200µs per call, redis-benchmark
// -c 4 -P 16 -t get measured about 54k requests/s with waves and 2.5k
// without (Concurrency 1) on the project's 2-core machine. With many
// connections there is parallelism already, and waves add little.
//
// Without -r, redis-benchmark sends every command of every client to one
// key. That works (through one node, SETs overwrite each other in order),
// but it measures one hot key on one coordinator; give -r 100000 to spread
// the load over the ring.
//
// # What clients send at connect
//
// HELLO answers NOPROTO, so clients fall back to RESP2; AUTH, SELECT 0,
// CLIENT SETNAME/GETNAME/ID/INFO/SETINFO, CONFIG GET (save, appendonly,
// databases, maxclients, timeout, proto-max-bulk-len, cluster-enabled),
// COMMAND (COUNT, LIST, INFO, DOCS), INFO, PING, ECHO, QUIT and RESET
// answer as Redis does. Any other command answers "ERR unknown command".
//
// # Robustness
//
// Requests are parsed by this package, not by redcon's reader, which
// (v1.6.4) panics on a bulk length near 2^63 and spins on a huge array
// count. Every length is checked against Config.MaxCommandBytes before
// anything is buffered; a malformed frame answers "-ERR Protocol error:
// ..." and closes that connection only. A panic inside a command becomes an
// error reply for that command. redcon's reply encoders are used as they
// are.
package resp
