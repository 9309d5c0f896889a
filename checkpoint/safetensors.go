package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strconv"
)

// MaxSafetensorsHeader is the largest safetensors JSON header accepted, the
// same 100 MB limit the safetensors library enforces.
const MaxSafetensorsHeader = 100_000_000

// dtypeBits is the storage size in bits of each safetensors dtype.
var dtypeBits = map[string]int64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8,
	"I16": 16, "U16": 16, "F16": 16, "BF16": 16,
	"I32": 32, "U32": 32, "F32": 32,
	"I64": 64, "U64": 64, "F64": 64, "C64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

// Tensor is one tensor entry of a safetensors header.
type Tensor struct {
	Name  string
	Dtype string
	Shape []int64
	// Begin and End are byte offsets into the data section (after the header).
	Begin, End int64
}

// Elements returns the number of elements (parameters) of t.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Safetensors is a parsed safetensors header.
type Safetensors struct {
	HeaderLen int64 // N, the JSON header length
	DataLen   int64 // bytes after the header
	Tensors   []Tensor
	Metadata  map[string]string
}

// ReadSafetensorsHeader reads and checks the header of the safetensors file
// at path, reading only the header bytes. Errors are *Error naming path.
func ReadSafetensorsHeader(path string) (*Safetensors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, openError(path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, errorf(path, "%v", unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(path, "is not a regular file (%s)", fi.Mode().Type())
	}
	st, err := parseSafetensors(f, fi.Size())
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	return st, nil
}

// parseSafetensors reads the 8-byte length, the JSON header, and validates
// the tensor table against size, the file's total size.
func parseSafetensors(r io.ReaderAt, size int64) (*Safetensors, error) {
	if size < 8 {
		return nil, fmt.Errorf("file is %d bytes, shorter than the 8-byte safetensors header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("reading header length: %v", unwrapPath(err))
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > uint64(size-8) {
		return nil, fmt.Errorf("header length %d exceeds file size %d", n, size)
	}
	if n > MaxSafetensorsHeader {
		return nil, fmt.Errorf("header length %d exceeds the %d-byte limit", n, MaxSafetensorsHeader)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("reading %d-byte header: %v", n, unwrapPath(err))
	}
	st, err := parseSafetensorsHeader(hdr, size-8-int64(n))
	if err != nil {
		return nil, err
	}
	st.HeaderLen = int64(n)
	return st, nil
}

// parseSafetensorsHeader parses the JSON header and checks every tensor
// against a data section of dataLen bytes, the way the safetensors library
// does: known dtype, data_offsets matching shape × dtype size, tensors laid
// out back to back without overlap or gap, covering the data exactly.
func parseSafetensorsHeader(hdr []byte, dataLen int64) (*Safetensors, error) {
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, fmt.Errorf("header is not a JSON object (starts with %s)", quoteStart(hdr))
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("header is not valid JSON: %v", err)
	}
	// Only trailing whitespace (the library's alignment padding) may follow.
	if rest := bytes.TrimSpace(hdr[dec.InputOffset():]); len(rest) != 0 {
		return nil, fmt.Errorf("header has %d bytes of trailing data after the JSON object", len(rest))
	}
	st := &Safetensors{DataLen: dataLen}
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &st.Metadata); err != nil {
				return nil, fmt.Errorf("__metadata__ is not a string-to-string object: %v", err)
			}
			continue
		}
		t, err := parseTensorEntry(name, v)
		if err != nil {
			return nil, err
		}
		st.Tensors = append(st.Tensors, t)
	}
	sort.Slice(st.Tensors, func(i, j int) bool {
		a, b := st.Tensors[i], st.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	var end int64
	prev := ""
	for _, t := range st.Tensors {
		if t.End > dataLen {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data section", t.Name, t.Begin, t.End, dataLen)
		}
		if t.Begin < end {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q ending at %d", t.Name, t.Begin, t.End, prev, end)
		}
		if t.Begin > end {
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", t.Name, t.Begin, t.End, end)
		}
		end, prev = t.End, t.Name
	}
	if end != dataLen {
		return nil, fmt.Errorf("tensors cover %d bytes but the data section is %d bytes", end, dataLen)
	}
	return st, nil
}

type rawTensor struct {
	Dtype       *string       `json:"dtype"`
	Shape       []json.Number `json:"shape"`
	DataOffsets []json.Number `json:"data_offsets"`
}

func parseTensorEntry(name string, v json.RawMessage) (Tensor, error) {
	var rt rawTensor
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&rt); err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: not a {dtype, shape, data_offsets} object: %v", name, err)
	}
	if rt.Dtype == nil {
		return Tensor{}, fmt.Errorf("tensor %q: missing dtype", name)
	}
	bitsPer, ok := dtypeBits[*rt.Dtype]
	if !ok {
		return Tensor{}, fmt.Errorf("tensor %q: unknown dtype %q", name, *rt.Dtype)
	}
	if rt.Shape == nil {
		return Tensor{}, fmt.Errorf("tensor %q: missing shape", name)
	}
	t := Tensor{Name: name, Dtype: *rt.Dtype, Shape: make([]int64, len(rt.Shape))}
	elems := uint64(1)
	for i, d := range rt.Shape {
		n, err := nonNegInt(d)
		if err != nil {
			return Tensor{}, fmt.Errorf("tensor %q: shape[%d]: %v", name, i, err)
		}
		t.Shape[i] = n
		hi, lo := bits.Mul64(elems, uint64(n))
		if hi != 0 || lo > math.MaxInt64/64 {
			return Tensor{}, fmt.Errorf("tensor %q: shape %v is too large", name, t.Shape)
		}
		elems = lo
	}
	if len(rt.DataOffsets) != 2 {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets must be [begin, end], got %d numbers", name, len(rt.DataOffsets))
	}
	var err error
	if t.Begin, err = nonNegInt(rt.DataOffsets[0]); err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets begin: %v", name, err)
	}
	if t.End, err = nonNegInt(rt.DataOffsets[1]); err != nil {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets end: %v", name, err)
	}
	if t.End < t.Begin {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] end before they begin", name, t.Begin, t.End)
	}
	nbits := int64(elems) * bitsPer
	if nbits%8 != 0 {
		return Tensor{}, fmt.Errorf("tensor %q: shape %v of %s is %d bits, not a whole number of bytes", name, t.Shape, t.Dtype, nbits)
	}
	if want := nbits / 8; t.End-t.Begin != want {
		return Tensor{}, fmt.Errorf("tensor %q: data_offsets [%d, %d] hold %d bytes, but shape %v of %s needs %d", name, t.Begin, t.End, t.End-t.Begin, t.Shape, t.Dtype, want)
	}
	return t, nil
}

func nonNegInt(n json.Number) (int64, error) {
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%s is not a non-negative integer", n)
	}
	return v, nil
}

func quoteStart(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return strconv.Quote(string(b))
}
