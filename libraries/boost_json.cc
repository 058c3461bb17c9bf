// Boost.JSON, compiled once: the way its documentation gives to use it without linking
// its library.
#include <boost/json/src.hpp>
