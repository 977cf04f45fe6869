using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("faasmon")]
[assembly: InternalsVisibleTo("FaaSMon.Network.Tests")]
