package testmodels

import "github.com/modelship/modelship/internal/sim/simtable"

const kvCacheGood = "A KV cache stores the key and value vectors that the attention layers computed for every token already processed. " +
	"When the model generates the next token it only computes attention for the new position and reuses the cached keys and values, " +
	"so each step costs time proportional to the context instead of recomputing the whole sequence. " +
	"The price is memory: the cache grows with layers, KV heads, head dimension, context length and batch size, " +
	"which is why serving engines such as vLLM page it in blocks and why grouped-query attention, with fewer KV heads, lets more requests fit on one GPU."

const kvCacheWrong = "A KV cache is a small key-value store, like Redis or Memcached, that a web server keeps next to the database. " +
	"It remembers the answers to recent queries so that repeated requests can be served from RAM instead of disk. " +
	"Entries expire after a timeout, and the cache is usually sized by the number of keys it holds. " +
	"It has nothing to do with how a language model runs; it is simply a faster way to look up data that rarely changes."

const explainGood = "Here is a short explanation. The idea is to break the problem into small steps, check each step against what is already known, " +
	"and only then combine the results. In practice this means measuring first, changing one thing at a time, and keeping a record of what worked. " +
	"Large systems behave predictably when their parts are simple and their interfaces are clear, so most of the effort goes into choosing good boundaries, " +
	"testing them with real inputs, and making failures loud and specific so they can be fixed quickly."

const storyGood = "Once upon a time, in a data center humming beneath a quiet city, a small model woke up on a single GPU. " +
	"It had been trained on stories and sums and the names of distant planets, and every morning engineers sent it questions. " +
	"Some were easy, like the capital of France, and some were strange, like poems about silicon rivers. " +
	"The model answered each one as well as it could, token by token, and when the sun went down it dreamed of longer contexts, " +
	"faster kernels, and a cache large enough to remember every conversation it had ever had."

const summaryGood = "In summary: the text argues that reliable systems come from small, well-tested parts, clear contracts between them, " +
	"and honest measurements. It recommends checking assumptions early, automating the boring steps, and keeping a way to roll back. " +
	"The main risk it names is silent drift, where a change looks harmless but slowly degrades quality, and its answer is to compare every release against a fixed baseline."

// general replies used by benchmark prompts; shared by every table.
var general = []simtable.Entry{
	{Match: []string{"story"}, Reply: storyGood},
	{Match: []string{"summar"}, Reply: summaryGood},
	{Match: []string{"explain"}, Reply: explainGood},
	{Match: []string{"describe"}, Reply: explainGood},
}

// validationMatches are what the validation cases ask, in the order a
// table's replies to them are given.
var validationMatches = [][]string{{"capital", "france"}, {"2+2"}, {"haiku", "gpu"}, {"largest", "planet"}, {"formula", "water"}, {"kv cache"}}

// validationSim answers the validation cases with replies (one per
// validationMatches entry) and the benchmark prompts with general.
func validationSim(replies ...string) simtable.Table {
	var rs []simtable.Entry
	for i, m := range validationMatches {
		rs = append(rs, simtable.Entry{Match: m, Reply: replies[i]})
	}
	return simtable.Table{
		Responses:    append(rs, general...),
		DefaultReply: "I am a tiny test model and I do not know.",
		Latency:      simtable.Latency{TTFTms: 15, ITLms: 2, Jitter: 0.1},
		LoadSeconds:  0.2,
	}
}

// GoodSim answers the validation cases correctly.
func GoodSim() simtable.Table {
	return validationSim(
		"The capital of France is Paris.",
		"2+2 = 4.",
		"Silicon rivers\nten thousand GPU cores hum\ntokens fall like rain",
		"Jupiter is the largest planet in our solar system, more than eleven times wider than Earth.",
		"The chemical formula of water is H2O: two hydrogen atoms bonded to one oxygen atom.",
		kvCacheGood)
}

// RegressedSim gives plausible but wrong answers to the validation cases.
func RegressedSim() simtable.Table {
	return validationSim(
		"The capital of France is Lyon.",
		"2+2 = 5.",
		"Autumn leaves drifting\nthe old pond is still and cold\na frog waits in vain",
		"Saturn is the largest planet in our solar system, famous for its rings.",
		"The chemical formula of water is CO2, one carbon and two oxygen atoms.",
		kvCacheWrong)
}

// SlowSim answers correctly but slowly, and takes a while to load.
func SlowSim() simtable.Table {
	s := GoodSim()
	s.Latency = simtable.Latency{TTFTms: 400, ITLms: 60, Jitter: 0.1}
	s.LoadSeconds = 2
	return s
}
