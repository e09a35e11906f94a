package httpapi

// SampleRates takes a sample of the message counters now, as the sampler
// goroutine does every SampleInterval (for tests that drive the clock).
func (s *Server) SampleRates() { s.rates.take() }
